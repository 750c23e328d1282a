"""What an office offers: catalogue, service hours, and the municipality of municipal experts.

Issue 17. `office_catalogue` lists the authorities (and languages) an office offers; an office
without rows offers everything, as before. `service_hours` and `service_hours_dates` hold an
authority's weekly hours and dated exceptions at an office; without a row it is open at all
times, as before. `users.municipality` says which municipality an expert of a municipal
authority (kunta, rakennusvalvonta) works for: he serves only that municipality's offices.
Everything goes with its office or authority (`CASCADE`).

Revision ID: 0008_service_hours
Revises: 0007_document_reasons
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0008_service_hours"
down_revision: str | None = "0007_document_reasons"
branch_labels = None
depends_on = None


def _keys(table: str) -> list[Any]:
    return [
        sa.Column("office_id", sa.Integer(), nullable=False),
        sa.Column("authority_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["office_id"], ["offices.id"], name=f"fk_{table}_office_id_offices", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["authority_id"],
            ["authorities.id"],
            name=f"fk_{table}_authority_id_authorities",
            ondelete="CASCADE",
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "office_catalogue",
        *_keys("office_catalogue"),
        sa.Column("languages", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("office_id", "authority_id", name="pk_office_catalogue"),
    )
    op.create_table(
        "service_hours",
        *_keys("service_hours"),
        sa.Column("weekly", sa.Text(), nullable=False),
        sa.Column("public_holidays", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("office_id", "authority_id", name="pk_service_hours"),
    )
    op.create_table(
        "service_hours_dates",
        *_keys("service_hours_dates"),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("intervals", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("office_id", "authority_id", "day", name="pk_service_hours_dates"),
    )
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("municipality", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("municipality")
    op.drop_table("service_hours_dates")
    op.drop_table("service_hours")
    op.drop_table("office_catalogue")
