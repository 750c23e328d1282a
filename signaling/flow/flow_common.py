"""What the service-flow modules share: refusals with a reason, room names, participant ids,
time helpers, the authorities' service types and the JSON views pushed to clients.

The views are the shapes of docs/signaling-events.md ("Shared shapes"); keep them in step.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from signaling.store.flow_models import (
    Call,
    CallParticipant,
    CallStatus,
    InterpreterRequest,
    ParticipantRole,
    RequestStatus,
    Ticket,
)
from signaling.store.models import Authority, Endpoint, Office, User
from signaling.transport.protocol import ErrorCode, ProtocolError

LANGUAGE_PATTERN = r"^[a-z]{3}$"
LANGUAGE_RE = re.compile(LANGUAGE_PATTERN)

# ISO 639-3 codes of sign languages: the kiosk spotlights an interpreter of one of these and
# the relay prefers frame rate over resolution for his video (EN 301 549 §6.5).
SIGN_LANGUAGES = frozenset(
    {"fse", "fss", "sgn", "swl", "nsl", "dsl", "ase", "bfi", "gsg", "fsl", "rsl", "ils"}
)


class FlowError(ProtocolError):
    """A refusal with an optional machine-readable `reason` the UI translates."""

    def __init__(self, code: ErrorCode, message: str, reason: str | None = None) -> None:
        super().__init__(code, message)
        self.reason = reason

    def to_ack(self) -> dict[str, Any]:
        ack = super().to_ack()
        if self.reason is not None:
            ack["error"]["reason"] = self.reason
        return ack


def not_found(message: str, reason: str | None = None) -> FlowError:
    return FlowError(ErrorCode.NOT_FOUND, message, reason)


def forbidden(message: str, reason: str | None = None) -> FlowError:
    return FlowError(ErrorCode.FORBIDDEN, message, reason)


def conflict(message: str, reason: str | None = None) -> FlowError:
    return FlowError(ErrorCode.CONFLICT, message, reason)


def invalid(message: str, reason: str | None = None) -> FlowError:
    return FlowError(ErrorCode.INVALID, message, reason)


# --- rooms and participant ids ----------------------------------------------------------------


def call_room(call_id: int) -> str:
    return f"call:{call_id}"


def clerks_room(office_id: int) -> str:
    return f"clerks:{office_id}"


def relay_room_id(call_id: int) -> str:
    return f"call-{call_id}"


def call_id_of_room(room_id: str) -> int | None:
    if not room_id.startswith("call-"):
        return None
    try:
        return int(room_id[5:])
    except ValueError:
        return None


def participant_id_for(kind: str, ident: int, role: str) -> str:
    if role == ParticipantRole.DOCUMENT_CAMERA:
        return f"doccam-{ident}"
    return f"{kind}-{ident}"


# --- time -------------------------------------------------------------------------------------


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat()


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with an offset (or Z) → aware UTC datetime; ValueError otherwise."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone offset")
    return value.astimezone(UTC)


def seconds_between(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds()))


# --- service types and outcomes ---------------------------------------------------------------


@dataclass(frozen=True)
class ServiceType:
    code: str
    fi: str
    sv: str
    en: str

    def view(self) -> dict[str, Any]:
        return {"code": self.code, "name": {"fi": self.fi, "sv": self.sv, "en": self.en}}


_GENERAL = ServiceType("general_advice", "Yleinen neuvonta", "Allmän rådgivning", "General advice")

# Per authority code (seeded in 0001_identity). Authorities added later get the general list.
SERVICE_TYPES: dict[str, tuple[ServiceType, ...]] = {
    "kela": (
        ServiceType("benefit_application", "Etuushakemus", "Förmånsansökan", "Benefit application"),
        ServiceType("housing_allowance", "Asumistuki", "Bostadsbidrag", "Housing allowance"),
        ServiceType(
            "sickness_allowance", "Sairauspäiväraha", "Sjukdagpenning", "Sickness allowance"
        ),
        ServiceType(
            "family_benefits", "Lapsiperheiden etuudet", "Barnfamiljers förmåner", "Family benefits"
        ),
        _GENERAL,
    ),
    "poliisi": (
        ServiceType(
            "passport_id_card",
            "Passi tai henkilökortti",
            "Pass eller identitetskort",
            "Passport or identity card",
        ),
        ServiceType("permit", "Lupa-asia", "Tillståndsärende", "Permit matter"),
        ServiceType("crime_report", "Rikosilmoitus", "Brottsanmälan", "Crime report"),
        _GENERAL,
    ),
    "vero": (
        ServiceType("tax_card", "Verokortti", "Skattekort", "Tax card"),
        ServiceType("tax_return", "Veroilmoitus", "Skattedeklaration", "Tax return"),
        ServiceType("property_tax", "Kiinteistövero", "Fastighetsskatt", "Property tax"),
        _GENERAL,
    ),
    "te": (
        ServiceType(
            "jobseeker_registration",
            "Työnhakijaksi ilmoittautuminen",
            "Anmälan som arbetssökande",
            "Registering as a jobseeker",
        ),
        ServiceType(
            "unemployment_security",
            "Työttömyysturva",
            "Utkomstskydd för arbetslösa",
            "Unemployment security",
        ),
        ServiceType(
            "employment_services",
            "Työllistymispalvelut",
            "Sysselsättningstjänster",
            "Employment services",
        ),
        _GENERAL,
    ),
    "dvv": (
        ServiceType(
            "population_data",
            "Väestötiedot ja muutto",
            "Befolkningsuppgifter och flytt",
            "Population data and moving",
        ),
        ServiceType("certificate", "Virkatodistus", "Ämbetsbetyg", "Official certificate"),
        ServiceType("marriage", "Avioliitto", "Äktenskap", "Marriage"),
        _GENERAL,
    ),
    "migri": (
        ServiceType("residence_permit", "Oleskelulupa", "Uppehållstillstånd", "Residence permit"),
        ServiceType("citizenship", "Kansalaisuus", "Medborgarskap", "Citizenship"),
        _GENERAL,
    ),
    "kunta": (
        ServiceType("social_services", "Sosiaalipalvelut", "Socialtjänster", "Social services"),
        ServiceType(
            "early_education", "Varhaiskasvatus", "Småbarnspedagogik", "Early childhood education"
        ),
        _GENERAL,
    ),
    "rakennusvalvonta": (
        ServiceType("building_permit", "Rakennuslupa", "Bygglov", "Building permit"),
        ServiceType(
            "plan_review",
            "Piirustusten tarkastus",
            "Granskning av ritningar",
            "Review of building plans",
        ),
        ServiceType("inspection", "Katselmus", "Syn", "Inspection"),
        _GENERAL,
    ),
}

OUTCOMES = ("resolved", "pending", "referred", "interrupted")


def service_types_for(authority_code: str) -> tuple[ServiceType, ...]:
    return SERVICE_TYPES.get(authority_code, (_GENERAL,))


def authority_view(authority: Authority) -> dict[str, Any]:
    return {
        "id": authority.id,
        "code": authority.code,
        "name": {"fi": authority.name_fi, "sv": authority.name_sv, "en": authority.name_en},
        "service_types": [t.view() for t in service_types_for(authority.code)],
    }


async def enabled_authorities(session: AsyncSession) -> list[Authority]:
    rows = await session.execute(
        select(Authority).where(Authority.enabled.is_(True)).order_by(Authority.id)
    )
    return list(rows.scalars())


# --- views ------------------------------------------------------------------------------------


async def authority_code(session: AsyncSession, authority_id: int) -> str:
    authority = await session.get(Authority, authority_id)
    return authority.code if authority is not None else ""


async def office_name(session: AsyncSession, office_id: int | None) -> str:
    if office_id is None:
        return ""
    office = await session.get(Office, office_id)
    return office.name if office is not None else ""


async def endpoint_name(session: AsyncSession, endpoint_id: int | None) -> str:
    if endpoint_id is None:
        return ""
    endpoint = await session.get(Endpoint, endpoint_id)
    return endpoint.name if endpoint is not None else ""


async def user_name(session: AsyncSession, user_id: int | None) -> str:
    if user_id is None:
        return ""
    user = await session.get(User, user_id)
    return user.display_name if user is not None else ""


def ticket_number(code: str, ticket_id: int) -> str:
    return f"{(code[:1] or 'X').upper()}-{ticket_id:03d}"


async def ticket_view(
    session: AsyncSession,
    ticket: Ticket,
    position: int | None = None,
    estimated_wait_seconds: int | None = None,
) -> dict[str, Any]:
    code = await authority_code(session, ticket.authority_id)
    return {
        "id": ticket.id,
        "number": ticket_number(code, ticket.id),
        "authority_id": ticket.authority_id,
        "authority_code": code,
        "office_id": ticket.office_id,
        "endpoint_id": ticket.endpoint_id,
        "language": ticket.language,
        "interpreting": ticket.interpreting,
        "kind": ticket.kind,
        "appointment_id": ticket.appointment_id,
        "expert_id": ticket.expert_id,
        "status": ticket.status,
        "queued_at": iso(ticket.queued_at),
        "queue_key": iso(ticket.queue_key),
        "position": position,
        "estimated_wait_seconds": estimated_wait_seconds,
        "call_id": ticket.call_id,
        "transferred_to": ticket.transferred_to_id,
    }


def participant_view(participant: CallParticipant) -> dict[str, Any]:
    sign = participant.role == ParticipantRole.INTERPRETER and (
        participant.language in SIGN_LANGUAGES
    )
    return {
        "participant_id": participant.participant_id,
        "kind": participant.kind,
        "id": participant.principal_id,
        "name": participant.name,
        "role": participant.role,
        "language": participant.language,
        "sign_language": sign,
        "spotlight": sign and participant.left_at is None,
        "connected": participant.connected,
        "left": participant.left_at is not None,
        # Why and since when he is not connected (null while connected, or never joined).
        "gone_reason": None if participant.connected else participant.gone_reason,
        "disconnected_at": None if participant.connected else iso(participant.disconnected_at),
    }


async def participants_of(session: AsyncSession, call_id: int) -> list[CallParticipant]:
    rows = await session.execute(
        select(CallParticipant)
        .where(CallParticipant.call_id == call_id)
        .order_by(CallParticipant.id)
        .execution_options(populate_existing=True)
    )
    return list(rows.scalars())


async def request_view(
    session: AsyncSession, request: InterpreterRequest, call: Call | None = None
) -> dict[str, Any]:
    if call is None:
        call = await session.get(Call, request.call_id)
    accepted = (
        {"id": request.accepted_by, "name": request.accepted_by_name or ""}
        if request.accepted_by is not None
        else None
    )
    return {
        "id": request.id,
        "call_id": request.call_id,
        "language": request.language,
        "sign_language": request.language in SIGN_LANGUAGES,
        "status": request.status,
        "requested_at": iso(request.requested_at),
        "requested_by": {
            "kind": request.requested_by_kind,
            "id": request.requested_by_id,
            "name": request.requested_by_name,
        },
        "accepted_by": accepted,
        "accepted_at": iso(request.accepted_at),
        "authority_code": await authority_code(session, call.authority_id) if call else "",
        "office_name": await office_name(session, call.office_id) if call else "",
        "customer_language": call.language if call else "",
    }


async def requests_of(session: AsyncSession, call_id: int) -> list[InterpreterRequest]:
    rows = await session.execute(
        select(InterpreterRequest)
        .where(InterpreterRequest.call_id == call_id)
        .order_by(InterpreterRequest.id)
        .execution_options(populate_existing=True)
    )
    return list(rows.scalars())


async def call_view(session: AsyncSession, call: Call) -> dict[str, Any]:
    participants = await participants_of(session, call.id)
    requests = await requests_of(session, call.id)
    end = call.ended_at
    return {
        "id": call.id,
        "room_id": call.room_id,
        "status": call.status,
        "authority_id": call.authority_id,
        "authority_code": await authority_code(session, call.authority_id),
        "office_id": call.office_id,
        "office_name": await office_name(session, call.office_id),
        "endpoint_id": call.endpoint_id,
        "expert_id": call.expert_id,
        "expert_name": await user_name(session, call.expert_id),
        "ticket_id": call.ticket_id,
        "appointment_id": call.appointment_id,
        "kind": call.kind,
        "language": call.language,
        "queued_at": iso(call.queued_at),
        "started_at": iso(call.started_at),
        "ended_at": iso(end),
        "end_reason": call.end_reason,
        "wait_seconds": seconds_between(call.queued_at, call.started_at),
        "participants": [participant_view(p) for p in participants],
        "interpreter_requests": [await request_view(session, r, call) for r in requests],
        "record_filed": call.record_seq is not None,
    }


def is_active(call: Call) -> bool:
    return call.status == CallStatus.ACTIVE


def is_ringing(request: InterpreterRequest) -> bool:
    return request.status == RequestStatus.RINGING


def load_ids(text: str) -> list[int]:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return [int(v) for v in value if isinstance(v, int)]


def dump_ids(ids: list[int]) -> str:
    return json.dumps(sorted(set(ids)))
