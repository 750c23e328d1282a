"""Interpreting need on tickets, desk services per office (issue 17).

`tickets.interpreting` is the interpreting language (ISO 639-3: fse, fss, ara, …) the customer
chose at the kiosk's language step, or the one his appointment booked; when an expert takes the
ticket the interpreting ring starts for it (signaling/flow/interpreters.py). None: no interpreter.
`office_desk_services` lists the desk services an office's clerk may record; an office without
rows uses the global list (signaling/records/desk_services.py). Rows go with their office
(`CASCADE`).

Revision ID: 0013_office_interpreting
Revises: 0012_kiosk_selftest
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0013_office_interpreting"
down_revision: str | None = "0012_kiosk_selftest"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("interpreting", sa.String(3), nullable=True))
    op.create_table(
        "office_desk_services",
        sa.Column("office_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["office_id"],
            ["offices.id"],
            name="fk_office_desk_services_office_id_offices",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("office_id", "code", name="pk_office_desk_services"),
    )


def downgrade() -> None:
    op.drop_table("office_desk_services")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("interpreting")
