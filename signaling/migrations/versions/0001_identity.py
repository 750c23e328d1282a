"""Identity: authorities (seeded), offices, endpoints, users, languages, sessions.

Revision ID: 0001_identity
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001_identity"
down_revision: str | None = None
branch_labels = None
depends_on = None

# code, Finnish, Swedish, English
AUTHORITIES = [
    ("kela", "Kela", "FPA", "Kela (Social Insurance Institution)"),
    ("poliisi", "Poliisi", "Polisen", "Police"),
    ("vero", "Verohallinto", "Skatteförvaltningen", "Tax Administration"),
    ("te", "TE-palvelut", "TE-tjänster", "Employment services (TE)"),
    (
        "dvv",
        "Digi- ja väestötietovirasto",
        "Myndigheten för digitalisering och befolkningsdata",
        "Digital and Population Data Services Agency",
    ),
    ("migri", "Maahanmuuttovirasto", "Migrationsverket", "Finnish Immigration Service"),
    ("kunta", "Kunnan asiakaspalvelu", "Kommunens kundtjänst", "Municipal customer service"),
    ("rakennusvalvonta", "Rakennusvalvonta", "Byggnadstillsyn", "Building control"),
]


def _timestamp(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    authorities = op.create_table(
        "authorities",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name_fi", sa.String(200), nullable=False),
        sa.Column("name_sv", sa.String(200), nullable=False),
        sa.Column("name_en", sa.String(200), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_authorities"),
        sa.UniqueConstraint("code", name="uq_authorities_code"),
    )
    op.create_table(
        "offices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("municipality", sa.String(100), nullable=False),
        sa.Column("default_language", sa.String(2), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_offices"),
    )
    op.create_table(
        "endpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("office_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("credential_hash", sa.String(128), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("presence", sa.String(16), nullable=False),
        _timestamp("presence_changed_at", nullable=True),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_endpoints"),
        sa.ForeignKeyConstraint(
            ["office_id"],
            ["offices.id"],
            name="fk_endpoints_office_id_offices",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_endpoints_office_id", "endpoints", ["office_id"])
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("office_id", sa.Integer(), nullable=True),
        sa.Column("presence", sa.String(16), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        _timestamp("presence_changed_at", nullable=True),
        sa.Column("signing_public_key", sa.Text(), nullable=True),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
        sa.ForeignKeyConstraint(
            ["office_id"], ["offices.id"], name="fk_users_office_id_offices", ondelete="SET NULL"
        ),
    )
    op.create_index("ix_users_office_id", "users", ["office_id"])
    op.create_table(
        "expert_authorities",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("authority_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "authority_id", name="pk_expert_authorities"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_expert_authorities_user_id_users",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["authority_id"],
            ["authorities.id"],
            name="fk_expert_authorities_authority_id_authorities",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "user_languages",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(3), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "code", name="pk_user_languages"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_user_languages_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        _timestamp("created_at"),
        _timestamp("expires_at"),
        sa.PrimaryKeyConstraint("id", name="pk_user_sessions"),
        sa.UniqueConstraint("token_hash", name="uq_user_sessions_token_hash"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_user_sessions_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_user_sessions_user_id", "user_sessions", ["user_id"])
    op.bulk_insert(
        authorities,
        [
            {"code": code, "name_fi": fi, "name_sv": sv, "name_en": en, "enabled": True}
            for code, fi, sv, en in AUTHORITIES
        ],
    )


def downgrade() -> None:
    for table in (
        "user_sessions",
        "user_languages",
        "expert_authorities",
        "users",
        "endpoints",
        "offices",
        "authorities",
    ):
        op.drop_table(table)
