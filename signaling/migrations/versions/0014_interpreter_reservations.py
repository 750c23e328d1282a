"""Interpreters reserved for booked appointments (issue 17).

`interpreter_reservations`: one row per booked appointment with an interpreting need (the
interpreter, language and slot; `released_at` once cancelled). `interpreter_reservation_cells`:
the 5-minute cells of an interpreter's time a live reservation covers; its primary key
(interpreter, cell start) keeps two reservations of one interpreter from overlapping, whichever
process books. Models: signaling/flow/interpreter_reservations.py.

Revision ID: 0014_interpreter_reservations
Revises: 0013_office_interpreting
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0014_interpreter_reservations"
down_revision: str | None = "0013_office_interpreting"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "interpreter_reservations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column("interpreter_id", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(3), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_interpreter_reservations"),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name="fk_interpreter_reservations_appointment_id_appointments",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["interpreter_id"],
            ["users.id"],
            name="fk_interpreter_reservations_interpreter_id_users",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("appointment_id", name="uq_interpreter_reservations_appointment_id"),
    )
    op.create_index(
        "ix_interpreter_reservations_interpreter_id",
        "interpreter_reservations",
        ["interpreter_id"],
    )
    op.create_table(
        "interpreter_reservation_cells",
        sa.Column("interpreter_id", sa.Integer(), nullable=False),
        sa.Column("cell_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reservation_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "interpreter_id", "cell_at", name="pk_interpreter_reservation_cells"
        ),
        sa.ForeignKeyConstraint(
            ["interpreter_id"],
            ["users.id"],
            name="fk_interpreter_reservation_cells_interpreter_id_users",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reservation_id"],
            ["interpreter_reservations.id"],
            name="fk_interpreter_reservation_cells_reservation",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_interpreter_reservation_cells_reservation_id",
        "interpreter_reservation_cells",
        ["reservation_id"],
    )


def downgrade() -> None:
    op.drop_table("interpreter_reservation_cells")
    op.drop_table("interpreter_reservations")
