"""Secretary alerts: the kiosk's "call the service secretary" button, in the database.

They lived in one process's memory, so with several signaling processes an alert raised on one
was unknown to the others (issue 14). A row is open while `acknowledged_at` is null; the partial
unique index `uq_secretary_alerts_open_endpoint` allows one open alert per kiosk, so two
processes pressing at once cannot both insert one. Answered rows are deleted
`secretary.KEEP_ANSWERED` after their answer. Alerts go with their office or kiosk
(`CASCADE`); the answering clerk's id becomes null if he is removed (his name stays).

Revision ID: 0005_secretary_alerts
Revises: 0004_relay_placement
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005_secretary_alerts"
down_revision: str | None = "0004_relay_placement"
branch_labels = None
depends_on = None

OPEN = sa.text("acknowledged_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "secretary_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("office_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_name", sa.String(200), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.Integer(), nullable=True),
        sa.Column("acknowledged_by_name", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_secretary_alerts"),
        sa.ForeignKeyConstraint(
            ["office_id"],
            ["offices.id"],
            name="fk_secretary_alerts_office_id_offices",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["endpoints.id"],
            name="fk_secretary_alerts_endpoint_id_endpoints",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["acknowledged_by"],
            ["users.id"],
            name="fk_secretary_alerts_acknowledged_by_users",
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_secretary_alerts_office_id", "secretary_alerts", ["office_id"])
    op.create_index(
        "uq_secretary_alerts_open_endpoint",
        "secretary_alerts",
        ["endpoint_id"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )


def downgrade() -> None:
    op.drop_index("uq_secretary_alerts_open_endpoint", table_name="secretary_alerts")
    op.drop_index("ix_secretary_alerts_office_id", table_name="secretary_alerts")
    op.drop_table("secretary_alerts")
