"""Statistics from the service log, the cost-compensation export, and the live view.

Figures come from the filed service records (the apudiaari), not from the calls table: what
the authorities compensate is what was recorded. Document counts come from the document
entries of the same log (received ones only), desk services from the clerks' desk entries
(signaling/records/desk_services.py), per authority the help was for. All routes are for
administrators. Customers' feedback has its own figures (signaling/records/feedback.py).

    GET /api/stats?by=authority|office|month&from=YYYY-MM&to=YYYY-MM
    GET /api/stats/compensation.csv?from=YYYY-MM&to=YYYY-MM
    GET /api/stats/hourly?from=YYYY-MM&to=YYYY-MM[&authority_id=N][&office_id=N]
    GET /api/live
    GET /api/log/verify

The hourly figures (the admin pages' charts) are per hour of the day in Finnish time: services
that started in that hour over the period, and their mean and longest wait.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from signaling.csv_safe import SafeDictWriter
from signaling.db import utcnow
from signaling.directory.principals import Role
from signaling.flow.desk_catalogue import DESK_SERVICE_CODES
from signaling.flow.flow_common import call_view
from signaling.flow.flow_metrics import FlowMetrics
from signaling.store.flow_models import Call, CallStatus, ServiceLogEntry
from signaling.store.models import Authority, Office
from signaling.transport.http import ApiError, json_ok, query_id, require_principal, services_of
from signaling.transport.protocol import ErrorCode
from signaling.transport.services import Services

MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
GROUPINGS = ("authority", "office", "month")
COUNTED_KINDS = ("service", "document", "desk")
COMPENSATION_COLUMNS = [
    "month",
    "authority_code",
    "authority",
    "office_id",
    "office",
    "services",
    "walk_ins",
    "appointments",
    "interpreted",
    "documents",
    "total_minutes",
    # The clerks' desk services for the authority at the office, in all and by kind.
    "desk_services",
    *(f"desk_{code}" for code in DESK_SERVICE_CODES),
]


@dataclass
class Tally:
    services: int = 0
    walk_ins: int = 0
    appointments: int = 0
    interpreted: int = 0
    documents: int = 0
    total_duration_seconds: int = 0
    total_wait_seconds: int = 0
    desk_services: int = 0
    desk_by_service: dict[str, int] = field(
        default_factory=lambda: {code: 0 for code in DESK_SERVICE_CODES}
    )
    labels: dict[str, Any] = field(default_factory=dict)

    def add_desk(self, record: dict[str, Any]) -> None:
        self.desk_services += 1
        code = record.get("desk_service")
        if code in self.desk_by_service:
            self.desk_by_service[code] += 1

    def add_service(self, record: dict[str, Any]) -> None:
        self.services += 1
        if record.get("kind") == "appointment":
            self.appointments += 1
        else:
            self.walk_ins += 1
        if record.get("interpreters"):
            self.interpreted += 1
        self.total_duration_seconds += int(record.get("duration_seconds") or 0)
        self.total_wait_seconds += int(record.get("wait_seconds") or 0)

    def figures(self) -> dict[str, Any]:
        def mean(total: int) -> int:
            return round(total / self.services) if self.services else 0

        return {
            **self.labels,
            "services": self.services,
            "walk_ins": self.walk_ins,
            "appointments": self.appointments,
            "interpreted": self.interpreted,
            "documents": self.documents,
            "total_duration_seconds": self.total_duration_seconds,
            "mean_wait_seconds": mean(self.total_wait_seconds),
            "mean_duration_seconds": mean(self.total_duration_seconds),
            "desk_services": self.desk_services,
            "desk_by_service": dict(self.desk_by_service),
        }


KeyFn = Callable[[ServiceLogEntry, dict[str, Any]], tuple[Any, ...]]


async def _tally(
    session: AsyncSession, key: KeyFn, start: str | None, end: str | None
) -> dict[tuple[Any, ...], Tally]:
    query = select(ServiceLogEntry).order_by(ServiceLogEntry.seq)
    if start:
        query = query.where(ServiceLogEntry.month >= start)
    if end:
        query = query.where(ServiceLogEntry.month <= end)
    tallies: dict[tuple[Any, ...], Tally] = {}
    for entry in (await session.execute(query)).scalars():
        if entry.kind not in COUNTED_KINDS:
            continue  # receipts repeat what the call's entries say
        record = json.loads(entry.record)
        tally = tallies.setdefault(key(entry, record), Tally())
        if entry.kind == "service":
            tally.add_service(record)
        elif entry.kind == "document" and record.get("verdict") == "received":
            tally.documents += 1
        elif entry.kind == "desk":
            tally.add_desk(record)
    return tallies


async def _names(session: AsyncSession) -> tuple[dict[int, Authority], dict[int, str]]:
    authorities = {a.id: a for a in (await session.execute(select(Authority))).scalars()}
    offices = {o.id: o.name for o in (await session.execute(select(Office))).scalars()}
    return authorities, offices


async def service_stats(
    session: AsyncSession, by: str, start: str | None = None, end: str | None = None
) -> list[dict[str, Any]]:
    """Figures per authority, office or month (rows sorted by their key)."""
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}")
    keys: dict[str, KeyFn] = {
        "authority": lambda _e, r: (r.get("authority_id"),),
        "office": lambda _e, r: (r.get("office_id"),),
        "month": lambda e, _r: (e.month,),
    }
    tallies = await _tally(session, keys[by], start, end)
    authorities, offices = await _names(session)
    rows = []
    for key in sorted(tallies, key=lambda k: tuple(str(x) for x in k)):
        tally = tallies[key]
        if by == "authority":
            authority = authorities.get(key[0]) if isinstance(key[0], int) else None
            tally.labels = {
                "authority_id": key[0],
                "authority_code": authority.code if authority else "",
            }
        elif by == "office":
            tally.labels = {
                "office_id": key[0],
                "office_name": offices.get(key[0], "") if isinstance(key[0], int) else "",
            }
        else:
            tally.labels = {"month": key[0]}
        rows.append(tally.figures())
    return rows


async def compensation_rows(
    session: AsyncSession, start: str | None = None, end: str | None = None
) -> list[dict[str, Any]]:
    """Per month × authority × office: what the host office is compensated for."""
    tallies = await _tally(
        session,
        lambda e, r: (e.month, r.get("authority_id"), r.get("office_id")),
        start,
        end,
    )
    authorities, offices = await _names(session)
    rows = []
    for key in sorted(tallies, key=lambda k: tuple(str(x) for x in k)):
        month, authority_id, office_id = key
        tally = tallies[key]
        authority = authorities.get(authority_id) if isinstance(authority_id, int) else None
        rows.append(
            {
                "month": month,
                "authority_code": authority.code if authority else "",
                "authority": authority.name_fi if authority else "",
                "office_id": office_id,
                "office": offices.get(office_id, "") if isinstance(office_id, int) else "",
                "services": tally.services,
                "walk_ins": tally.walk_ins,
                "appointments": tally.appointments,
                "interpreted": tally.interpreted,
                "documents": tally.documents,
                "total_minutes": round(tally.total_duration_seconds / 60),
                "desk_services": tally.desk_services,
                **{f"desk_{code}": n for code, n in tally.desk_by_service.items()},
            }
        )
    return rows


def _local_zone() -> tzinfo:
    try:
        return ZoneInfo("Europe/Helsinki")
    except ZoneInfoNotFoundError:  # a host without the time-zone database
        return UTC


LOCAL_ZONE = _local_zone()


def _started_hour(record: dict[str, Any]) -> int | None:
    stamp = record.get("started_at")
    if not isinstance(stamp, str):
        return None
    try:
        started = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return started.astimezone(LOCAL_ZONE).hour


async def hourly_rows(
    session: AsyncSession,
    start: str | None = None,
    end: str | None = None,
    authority_id: int | None = None,
    office_id: int | None = None,
) -> list[dict[str, Any]]:
    """24 rows, one per hour of the day (Finnish time): services started in that hour over
    the period, and their mean and longest wait in seconds (None without services)."""
    query = select(ServiceLogEntry.record).where(ServiceLogEntry.kind == "service")
    if start:
        query = query.where(ServiceLogEntry.month >= start)
    if end:
        query = query.where(ServiceLogEntry.month <= end)
    counts = [0] * 24
    waits: list[list[int]] = [[] for _ in range(24)]
    for (text,) in await session.execute(query.order_by(ServiceLogEntry.seq)):
        record = json.loads(text)
        if authority_id is not None and record.get("authority_id") != authority_id:
            continue
        if office_id is not None and record.get("office_id") != office_id:
            continue
        hour = _started_hour(record)
        if hour is None:
            continue
        counts[hour] += 1
        waits[hour].append(int(record.get("wait_seconds") or 0))
    return [
        {
            "hour": hour,
            "services": counts[hour],
            "mean_wait_seconds": round(sum(waits[hour]) / counts[hour]) if counts[hour] else None,
            "max_wait_seconds": max(waits[hour]) if counts[hour] else None,
        }
        for hour in range(24)
    ]


def compensation_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    # Office and authority names are typed by administrators: no formulas in the sheet.
    writer = SafeDictWriter(out, COMPENSATION_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


async def live_view(session: AsyncSession) -> dict[str, Any]:
    from signaling.flow.queues import queue_views

    calls = (
        await session.execute(
            select(Call).where(Call.status == CallStatus.ACTIVE).order_by(Call.id)
        )
    ).scalars()
    return {
        "calls": [await call_view(session, c) for c in calls],
        "queues": await queue_views(session, None, None, utcnow()),
    }


# --- Prometheus -------------------------------------------------------------------------------


# --- HTTP -------------------------------------------------------------------------------------


def _month_param(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    if not MONTH.match(value):
        raise ApiError(ErrorCode.INVALID, f"{name} must be a month like 2026-11")
    return value


async def _admin(request: web.Request) -> Services:
    await require_principal(request, {Role.ADMIN})
    return services_of(request.app)


async def get_stats(request: web.Request) -> web.Response:
    services = await _admin(request)
    by = request.query.get("by", "authority")
    if by not in GROUPINGS:
        raise ApiError(ErrorCode.INVALID, f"by must be one of {', '.join(GROUPINGS)}")
    start, end = _month_param(request, "from"), _month_param(request, "to")
    async with services.sessions() as session:
        rows = await service_stats(session, by, start, end)
    return json_ok(by=by, rows=rows)


def _id_param(request: web.Request, name: str) -> int | None:
    return query_id(request, name)


async def get_hourly(request: web.Request) -> web.Response:
    services = await _admin(request)
    start, end = _month_param(request, "from"), _month_param(request, "to")
    authority_id, office_id = _id_param(request, "authority_id"), _id_param(request, "office_id")
    async with services.sessions() as session:
        rows = await hourly_rows(session, start, end, authority_id, office_id)
    return json_ok(timezone=str(LOCAL_ZONE), rows=rows)


async def get_compensation_csv(request: web.Request) -> web.Response:
    services = await _admin(request)
    start, end = _month_param(request, "from"), _month_param(request, "to")
    async with services.sessions() as session:
        rows = await compensation_rows(session, start, end)
    name = f"etapalvelu-compensation-{start or 'all'}-{end or 'all'}.csv"
    return web.Response(
        text=compensation_csv(rows),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def get_live(request: web.Request) -> web.Response:
    services = await _admin(request)
    async with services.sessions() as session:
        view = await live_view(session)
    return json_ok(**view)


async def get_log_verify(request: web.Request) -> web.Response:
    from signaling.records.log_checkpoints import CheckpointSource, verify_log
    services = await _admin(request)
    # The chain, the signatures and the server's own signed checkpoints (truncation,
    # emptying, re-chaining); an authority checks against its own copy with the CLI.
    source = CheckpointSource.from_settings(services.settings)
    async with services.sessions() as session:
        report = await verify_log(session, source)
    found = report.as_dict()
    return json_ok(
        valid=found["ok"],
        entries=found["entries"],
        head_hash=found["head_hash"],
        first_broken=found["first_broken"],
        checkpoint=found["checkpoint"],
        unanchored_entries=found["unanchored_entries"],
        checkpoints_checked=found["checkpoints_checked"],
        unsigned_service_records=found["unsigned_service_records"],
        notes=found["notes"],
    )


def setup(app: web.Application, services: Services) -> None:
    services.extras["flow_metrics"] = FlowMetrics(services)
    app.router.add_get("/api/stats", get_stats)
    app.router.add_get("/api/stats/compensation.csv", get_compensation_csv)
    app.router.add_get("/api/stats/hourly", get_hourly)
    app.router.add_get("/api/live", get_live)
    app.router.add_get("/api/log/verify", get_log_verify)
