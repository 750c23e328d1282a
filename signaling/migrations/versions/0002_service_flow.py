"""Service flow: tickets, appointments, calls, participants, interpreter requests, service log.

The service log also gets triggers that refuse UPDATE and DELETE, so that the append-only
rule holds for every program using the database, not only ours (a person with write access
to the database file can still drop them; the hash chain is what makes that visible).

Revision ID: 0002_service_flow
Revises: 0001_identity
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002_service_flow"
down_revision: str | None = "0001_identity"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _fk(
    table: str, column: str, target: str, ondelete: str | None = None
) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=f"fk_{table}_{column}_{target}",
        ondelete=ondelete,
    )


def upgrade() -> None:
    op.create_table(
        "appointments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(8), nullable=False),
        sa.Column("authority_id", sa.Integer(), nullable=False),
        sa.Column("office_id", sa.Integer(), nullable=False),
        _ts("starts_at"),
        sa.Column("language", sa.String(3), nullable=False),
        sa.Column("service_type", sa.String(64), nullable=False),
        sa.Column("expert_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("booked_by", sa.Integer(), nullable=True),
        _ts("created_at"),
        _ts("checked_in_at", True),
        _ts("released_at", True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_appointments"),
        sa.UniqueConstraint("code", name="uq_appointments_code"),
        _fk("appointments", "authority_id", "authorities"),
        _fk("appointments", "office_id", "offices"),
        _fk("appointments", "expert_id", "users", "SET NULL"),
        _fk("appointments", "booked_by", "users", "SET NULL"),
    )
    op.create_index("ix_appointments_office_id", "appointments", ["office_id"])
    op.create_index("ix_appointments_slot", "appointments", ["authority_id", "starts_at"])

    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("authority_id", sa.Integer(), nullable=False),
        sa.Column("office_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=True),
        sa.Column("language", sa.String(3), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.Column("expert_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("queued_at"),
        _ts("queue_key"),
        _ts("created_at"),
        sa.Column("taken_by", sa.Integer(), nullable=True),
        _ts("taken_at", True),
        _ts("finished_at", True),
        sa.Column("call_id", sa.Integer(), nullable=True),
        sa.Column("transferred_from_id", sa.Integer(), nullable=True),
        sa.Column("transferred_to_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tickets"),
        _fk("tickets", "authority_id", "authorities"),
        _fk("tickets", "office_id", "offices"),
        _fk("tickets", "endpoint_id", "endpoints", "SET NULL"),
        _fk("tickets", "appointment_id", "appointments", "SET NULL"),
        _fk("tickets", "expert_id", "users", "SET NULL"),
        _fk("tickets", "taken_by", "users", "SET NULL"),
    )
    op.create_index("ix_tickets_office_id", "tickets", ["office_id"])
    op.create_index("ix_tickets_endpoint_id", "tickets", ["endpoint_id"])
    op.create_index(
        "ix_tickets_line", "tickets", ["authority_id", "language", "status", "queue_key"]
    )

    op.create_table(
        "calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("authority_id", sa.Integer(), nullable=False),
        sa.Column("office_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=True),
        sa.Column("expert_id", sa.Integer(), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("language", sa.String(3), nullable=False),
        _ts("queued_at"),
        _ts("started_at"),
        _ts("ended_at", True),
        sa.Column("end_reason", sa.String(32), nullable=True),
        sa.Column("record_seq", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_calls"),
        sa.UniqueConstraint("room_id", name="uq_calls_room_id"),
        _fk("calls", "authority_id", "authorities"),
        _fk("calls", "office_id", "offices"),
        _fk("calls", "endpoint_id", "endpoints", "SET NULL"),
        _fk("calls", "expert_id", "users", "SET NULL"),
    )
    op.create_index("ix_calls_status", "calls", ["status"])
    op.create_index("ix_calls_expert_id", "calls", ["expert_id"])

    op.create_table(
        "call_participants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("language", sa.String(3), nullable=True),
        _ts("added_at"),
        _ts("joined_at", True),
        sa.Column("connected", sa.Boolean(), nullable=False),
        _ts("left_at", True),
        sa.PrimaryKeyConstraint("id", name="pk_call_participants"),
        sa.UniqueConstraint("call_id", "participant_id", name="uq_call_participants_call_id"),
        _fk("call_participants", "call_id", "calls", "CASCADE"),
    )
    op.create_index("ix_call_participants_call_id", "call_participants", ["call_id"])

    op.create_table(
        "interpreter_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("requested_at"),
        sa.Column("requested_by_kind", sa.String(16), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=False),
        sa.Column("requested_by_name", sa.String(200), nullable=False),
        sa.Column("accepted_by", sa.Integer(), nullable=True),
        sa.Column("accepted_by_name", sa.String(200), nullable=True),
        _ts("accepted_at", True),
        _ts("closed_at", True),
        sa.Column("alerted", sa.Text(), nullable=False),
        sa.Column("declined", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_interpreter_requests"),
        _fk("interpreter_requests", "call_id", "calls", "CASCADE"),
        _fk("interpreter_requests", "accepted_by", "users", "SET NULL"),
    )
    op.create_index("ix_interpreter_requests_call_id", "interpreter_requests", ["call_id"])
    op.create_index("ix_interpreter_requests_status", "interpreter_requests", ["status"])

    op.create_table(
        "service_log",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("filed_at", sa.String(40), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=True),
        sa.Column("expert_id", sa.Integer(), nullable=True),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=True),
        sa.Column("signer_public_key", sa.Text(), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_service_log"),
        sa.UniqueConstraint("prev_hash", name="uq_service_log_prev_hash"),
        sa.UniqueConstraint("hash", name="uq_service_log_hash"),
    )
    op.create_index("ix_service_log_month", "service_log", ["month"])
    op.create_index("ix_service_log_call_id", "service_log", ["call_id"])
    op.create_index("ix_service_log_expert_id", "service_log", ["expert_id"])

    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER service_log_no_{action.lower()} BEFORE {action} ON service_log "
                "BEGIN SELECT RAISE(ABORT, 'service_log is append-only'); END"
            )
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION service_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'service_log is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER service_log_append_only BEFORE UPDATE OR DELETE ON service_log "
            "FOR EACH ROW EXECUTE FUNCTION service_log_append_only()"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS service_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS service_log_no_delete")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS service_log_append_only ON service_log")
        op.execute("DROP FUNCTION IF EXISTS service_log_append_only()")
    for table in (
        "service_log",
        "interpreter_requests",
        "call_participants",
        "calls",
        "tickets",
        "appointments",
    ):
        op.drop_table(table)
