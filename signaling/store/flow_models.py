"""Tables of the service flow: tickets, appointments, calls, participants, interpreter requests
and the service log (apudiaari).

Created by `signaling/migrations/versions/0002_service_flow.py` (and altered by later
revisions, e.g. 0003_call_lifecycle); keep them in step.
History rows (tickets, calls, log entries) point at people and kiosks with `SET NULL` so that
removing a user or an endpoint never rewrites history; the service log carries names in its
records anyway.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from signaling.db import Base, UTCDateTime, utcnow
from signaling.store import models as _identity_models  # noqa: F401  # the tables our keys refer to


class TicketKind(StrEnum):
    WALK_IN = "walk_in"
    APPOINTMENT = "appointment"


class TicketStatus(StrEnum):
    WAITING = "waiting"
    SERVING = "serving"
    DONE = "done"
    CANCELLED = "cancelled"
    TRANSFERRED = "transferred"
    NO_SHOW = "no_show"


class AppointmentStatus(StrEnum):
    BOOKED = "booked"
    CHECKED_IN = "checked_in"
    SERVED = "served"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"


class CallStatus(StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


class ParticipantRole(StrEnum):
    CUSTOMER = "customer"
    EXPERT = "expert"
    INTERPRETER = "interpreter"
    DOCUMENT_CAMERA = "document_camera"


class GoneReason(StrEnum):
    """Why a participant is not connected (`Participant.gone_reason`)."""

    TIMEOUT = "timeout"  # the relay heard nothing from him
    ICE_FAILED = "ice_failed"
    CONNECTION_CLOSED = "connection_closed"
    LEFT = "left"  # call:leave
    SOCKET_LOST = "socket_lost"  # the socket holding his relay session went away


class EndReason(StrEnum):
    """`Call.end_reason` and the `reason` of the `call:ended` push."""

    ENDED = "ended"  # by the expert
    ENDED_BY_ADMIN = "ended_by_admin"
    ENDED_BY_CUSTOMER = "ended_by_customer"  # the kiosk's "End call"
    TRANSFERRED = "transferred"
    OFFICE_DISABLED = "office_disabled"
    EXPERT_LOST = "expert_lost"  # the expert did not return in time (call watchdog)
    ABANDONED = "abandoned"  # nobody was connected (call watchdog)


class RequestStatus(StrEnum):
    RINGING = "ringing"
    ACCEPTED = "accepted"
    CANCELLED = "cancelled"


class Ticket(Base):
    """A customer's place in one authority's line (walk-in or checked-in appointment)."""

    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_line", "authority_id", "language", "status", "queue_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    authority_id: Mapped[int] = mapped_column(ForeignKey("authorities.id"))
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"), index=True)
    endpoint_id: Mapped[int | None] = mapped_column(
        ForeignKey("endpoints.id", ondelete="SET NULL"), nullable=True, index=True
    )
    language: Mapped[str] = mapped_column(String(3))
    kind: Mapped[str] = mapped_column(String(16))
    appointment_id: Mapped[int | None] = mapped_column(
        ForeignKey("appointments.id", ondelete="SET NULL"), nullable=True
    )
    # The booked expert of an appointment: only he takes this ticket.
    expert_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    status: Mapped[str] = mapped_column(String(16), default=TicketStatus.WAITING.value)
    # Arrival at the kiosk; kept when the customer is transferred to another line.
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Order in line: arrival for a walk-in, the booked time for an appointment.
    queue_key: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    taken_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    call_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    transferred_from_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    transferred_to_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The interpreting need (ISO 639-3: fse, fss, ara, ...; None: none), chosen at the kiosk or
    # booked: the ring starts when an expert takes the ticket (migration 0013, issue 17).
    interpreting: Mapped[str | None] = mapped_column(String(3), nullable=True)


class Appointment(Base):
    """A booked slot; the customer checks in at a kiosk of the office with `code`."""

    __tablename__ = "appointments"
    __table_args__ = (
        Index("ix_appointments_slot", "authority_id", "starts_at"),
        # No expert has two live appointments starting at one time, whichever process books
        # (0010_bookings): the loser of a race for the last free slot gets "slot_taken".
        Index(
            "uq_appointments_expert_live_slot",
            "expert_id",
            "starts_at",
            unique=True,
            sqlite_where=text("status IN ('booked', 'checked_in')"),
            postgresql_where=text("status IN ('booked', 'checked_in')"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(8), unique=True)
    authority_id: Mapped[int] = mapped_column(ForeignKey("authorities.id"))
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    language: Mapped[str] = mapped_column(String(3))
    service_type: Mapped[str] = mapped_column(String(64))
    expert_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    status: Mapped[str] = mapped_column(String(16), default=AppointmentStatus.BOOKED.value)
    booked_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ticket_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # --- bookings (0010_bookings, signaling/booking/booking.py) ---
    # The end of the booked slot (None: booked by an expert without a slot length).
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Who booked: "expert", "secretary", "customer" (the public /book page), "admin".
    booked_via: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # Where the confirmation and the reminders go; the language they are written in.
    contact_email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    contact_phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    message_language: Mapped[str] = mapped_column(String(2), default="fi", server_default="fi")
    # From home over video (the join page of issue 18) instead of at the office's kiosk.
    remote: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # An interpreter for the slot: ISO 639-3 (fse, fss, ara, ...), None when not needed.
    interpreting: Mapped[str | None] = mapped_column(String(3), nullable=True)
    # SHA-256 of the /booking/<token> link's token (the token itself is only in the message).
    manage_token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    # Times the booking was moved to another slot (the .ics SEQUENCE).
    sequence: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Call(Base):
    """A video call between a kiosk and an expert (and interpreters), one relay room."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=CallStatus.ACTIVE.value, index=True)
    authority_id: Mapped[int] = mapped_column(ForeignKey("authorities.id"))
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"))
    endpoint_id: Mapped[int | None] = mapped_column(
        ForeignKey("endpoints.id", ondelete="SET NULL"), nullable=True
    )
    expert_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True, index=True
    )
    ticket_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    appointment_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    kind: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(3))
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Sequence number of the filed service record in the log (None until filed).
    record_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The ticket the kiosk took with `ticket:requeue` after an `expert_lost` end (one per call).
    requeue_ticket_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The relay node the call is placed on ("local": this deployment's in-process relay) and
    # how many times it has moved (failover, drain); signaling/transport/relay_placement.py.
    relay_node: Mapped[str] = mapped_column(String(128), default="local")
    relay_epoch: Mapped[int] = mapped_column(Integer, default=0)


class CallParticipant(Base):
    """Who may be (and was) in a call; `participant_id` is the relay's name for him."""

    __tablename__ = "call_participants"
    __table_args__ = (UniqueConstraint("call_id", "participant_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    participant_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # "user" | "endpoint"
    principal_id: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(3), nullable=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Whether a relay session is up now (False after leave / relay reported him gone).
    connected: Mapped[bool] = mapped_column(Boolean, default=False)
    # An interpreter who left for good (he needs a new request to come back).
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # When and why he stopped being connected (GoneReason); both cleared when he joins again.
    # The call watchdog (signaling/flow/call_watch.py) counts from `disconnected_at`.
    disconnected_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    gone_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)


class InterpreterRequest(Base):
    """One ring of the interpreting ring: the first interpreter to accept wins."""

    __tablename__ = "interpreter_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    language: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default=RequestStatus.RINGING.value, index=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    requested_by_kind: Mapped[str] = mapped_column(String(16))
    requested_by_id: Mapped[int] = mapped_column(Integer)
    requested_by_name: Mapped[str] = mapped_column(String(200))
    accepted_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    accepted_by_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # JSON lists of user ids: who was alerted, who declined.
    alerted: Mapped[str] = mapped_column(Text, default="[]")
    declined: Mapped[str] = mapped_column(Text, default="[]")
    # When a ring that alerted the reserved interpreter alone is widened to every interpreter
    # of the language (signaling/flow/interpreter_reservations.py); None once widened, or with no
    # head start. In the database so that any process's sweep widens it (once).
    widen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)


class ServiceLogEntry(Base):
    """One entry of the append-only, hash-chained service log (apudiaari).

    `record` is the canonical JSON of the entry's body; `hash` covers it together with
    seq, kind, filed_at, signature, signer_public_key and prev_hash. `month`, `call_id` and
    `expert_id` repeat values of the body for indexed look-ups; `admin log verify` checks that
    they agree with it.
    """

    __tablename__ = "service_log"

    # Assigned as previous + 1; being the primary key it is the guard against two writers
    # appending after the same entry.
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))  # "service" | "document"
    filed_at: Mapped[str] = mapped_column(String(40))
    month: Mapped[str] = mapped_column(String(7), index=True)  # "2026-11"
    call_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    expert_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    record: Mapped[str] = mapped_column(Text)
    signature: Mapped[str | None] = mapped_column(Text, nullable=True)
    signer_public_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class SecretaryAlert(Base):
    """A kiosk's "call the service secretary" press (signaling/flow/secretary.py); open while
    `acknowledged_at` is null. Created by 0005_secretary_alerts.

    The partial unique index allows one open alert per kiosk, also with several signaling
    processes pressing at once; answered rows are pruned after `secretary.KEEP_ANSWERED`.
    """

    __tablename__ = "secretary_alerts"
    __table_args__ = (
        Index(
            "uq_secretary_alerts_open_endpoint",
            "endpoint_id",
            unique=True,
            sqlite_where=text("acknowledged_at IS NULL"),
            postgresql_where=text("acknowledged_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id", ondelete="CASCADE"), index=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    # The kiosk's name when it pressed (what the clerks' list shows).
    endpoint_name: Mapped[str] = mapped_column(String(200))
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    acknowledged_by_name: Mapped[str | None] = mapped_column(String(200), nullable=True)


class DocumentCallKey(Base):
    """A participant's published call key (signaling/in_call/documents.py), one row per suite, so
    every
    signaling process builds `documents:keys` from the whole list. Created by
    0006_document_exchange; goes with its call (`CASCADE`).
    """

    __tablename__ = "document_call_keys"

    call_id: Mapped[int] = mapped_column(
        ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True
    )
    participant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    suite: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    principal_id: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    public_key: Mapped[str] = mapped_column(String(100))
    # The socket that published it (on whichever process): tells a kiosk from its document
    # camera, which share one principal.
    sid: Mapped[str] = mapped_column(String(64), default="")


class DocumentTransfer(Base):
    """A document transfer's metadata (never content); its ciphertext is in `document_chunks`
    (several processes) or the data folder (one process). Created by 0006_document_exchange.
    """

    __tablename__ = "document_transfers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    sender: Mapped[str] = mapped_column(String(64))
    sender_kind: Mapped[str] = mapped_column(String(16))
    sender_principal_id: Mapped[int] = mapped_column(Integer)
    suite: Mapped[int] = mapped_column(Integer)
    ciphertext_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(64))
    upload_token: Mapped[str] = mapped_column(String(64))
    received_bytes: Mapped[int] = mapped_column(Integer, default=0)
    # Epoch seconds (time.time()): the expiry sweep of any process compares against it.
    created: Mapped[float] = mapped_column(Float, index=True)


class DocumentRecipient(Base):
    """One recipient of a transfer, his download token and answer (null until he answers)."""

    __tablename__ = "document_recipients"

    transfer_id: Mapped[str] = mapped_column(
        ForeignKey("document_transfers.id", ondelete="CASCADE"), primary_key=True
    )
    participant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    principal_id: Mapped[int] = mapped_column(Integer)
    download_token: Mapped[str] = mapped_column(String(64))
    verdict: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # the refusal reason, replayed to a sender who missed the push (0007_document_reasons)
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)


class DocumentChunk(Base):
    """A piece of a transfer's ciphertext, in upload order (`seq`), readable by every process."""

    __tablename__ = "document_chunks"

    transfer_id: Mapped[str] = mapped_column(
        ForeignKey("document_transfers.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column("bytes", LargeBinary)
