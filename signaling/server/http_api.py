"""HTTP endpoints: health, readiness, metrics, login and the administrators' REST API.

Every JSON body is validated against a schema; errors are `{"ok": false, "error": {code,
message}}` with a fitting HTTP status. Features adding their own routes use
`services_of(request.app)`, `read_json(request, Schema)` and `require_principal(request,
roles)` (a `Authorization: Bearer <session token>` header).
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import shutil
import uuid
from datetime import UTC
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import inspect, text

from signaling.directory import directory
from signaling.directory.identity import (
    AuthenticationError,
    login,
    logout,
    sha256_hex,
)
from signaling.directory.login_guard import Blocked, Busy, LoginGuard
from signaling.directory.principals import Role
from signaling.server.dispatch import disconnect_session
from signaling.transport.connections import disconnect_principal
from signaling.transport.http import (
    ApiError,
    _is_loopback,
    bearer_token,
    client_address,
    json_ok,
    path_id,
    query_id,
    read_json,
    require_principal,
    services_of,
)
from signaling.transport.protocol import ErrorCode
from signaling.transport.services import Services

log = logging.getLogger(__name__)


# --- health -------------------------------------------------------------------------------


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready only when this process can serve: the schema is at head with every table there,
    the database takes a write, the data folder's disk has room, Redis answers (when
    configured) and the relay runs. 503 names what is wrong."""
    services = services_of(request.app)
    checks = {
        "database": await _check_database(services),
        "disk": await _check_disk(services),
        "redis": await _check_redis(services),
        "relay": _check_relay(services),
    }
    ready = all(value in ("ok", "absent", "not configured") for value in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=200 if ready else 503,
    )


READY_TIMEOUT = 3.0


@functools.lru_cache(maxsize=1)
def _schema_heads() -> frozenset[str]:
    from signaling.db import head_revisions

    return frozenset(head_revisions())


async def _check_database(services: Services) -> str:
    from signaling.db import Base

    async def check() -> str:
        async with services.engine.connect() as connection:
            tables = set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
            missing = sorted(set(Base.metadata.tables) - tables)
            if missing:
                return f"error: tables missing: {', '.join(missing[:5])}"
            current = await connection.execute(text("SELECT version_num FROM alembic_version"))
            versions = {row[0] for row in current}
            heads = _schema_heads()
            if versions != heads:
                return f"error: schema at {sorted(versions) or 'nothing'}, head is {sorted(heads)}"
            # A write that changes nothing but must reach the disk: a full disk, a read-only
            # file or a read-only replica fail here, not at the next ticket.
            await connection.execute(text("UPDATE alembic_version SET version_num = version_num"))
            await connection.commit()
        return "ok"

    try:
        return await asyncio.wait_for(check(), READY_TIMEOUT)
    except TimeoutError:
        return "error: no answer within 3 s"
    except Exception as exc:
        return f"error: {type(exc).__name__}: {_first_line(exc)}"


async def _check_disk(services: Services) -> str:
    settings = services.settings
    data_dir = settings.data_dir

    def check() -> str:
        free = shutil.disk_usage(data_dir).free
        if free < settings.ready_min_free_bytes:
            return f"error: {free // (1024 * 1024)} MiB free in {data_dir}"
        probe = data_dir / f".ready-{uuid.uuid4().hex}"
        try:
            with open(probe, "wb") as handle:
                handle.write(b"ready")
        finally:
            probe.unlink(missing_ok=True)
        return "ok"

    try:
        return await asyncio.get_running_loop().run_in_executor(None, check)
    except OSError as exc:
        return f"error: cannot write in {data_dir}: {exc.strerror or exc}"


async def _check_redis(services: Services) -> str:
    url = services.settings.redis_url
    if not url:
        return "not configured"
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await asyncio.wait_for(client.ping(), READY_TIMEOUT)
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}: {_first_line(exc)}"
    finally:
        await client.aclose()


def _check_relay(services: Services) -> str:
    from signaling.transport.relay_placement import router_of

    router = router_of(services)
    if router is None or (router.mode == "local" and router.local is None):
        return "absent"
    if router.mode == "nodes":
        return "ok" if router.running else "no live relay node"
    return "ok" if router.running else "stopped"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text. With `metrics_token` set, only a scraper presenting it; otherwise only
    from this machine (a remote scraper gets a token or the separate `metrics_address`)."""
    settings = services_of(request.app).settings
    if settings.metrics_token:
        presented = request.headers.get("Authorization", "")
        expected = f"Bearer {settings.metrics_token}"
        if not hmac.compare_digest(presented.encode(), expected.encode()):
            raise ApiError(ErrorCode.UNAUTHENTICATED, "send Authorization: Bearer <metrics token>")
    elif not _is_loopback(request.remote) or "X-Forwarded-For" in request.headers:
        raise web.HTTPNotFound()
    return metrics_response(request.app)


def metrics_response(app: web.Application) -> web.Response:
    registry = services_of(app).metrics.registry
    response = web.Response(body=generate_latest(registry))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


# --- sessions -----------------------------------------------------------------------------


GUARD_KEY = web.AppKey("login_guard", LoginGuard)


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


async def api_login(request: web.Request) -> web.Response:
    services = services_of(request.app)
    data = await read_json(request, LoginRequest)
    guard = request.app[GUARD_KEY]
    address = client_address(request, services.settings.trusted_proxies)
    try:
        await guard.admit(address, data.username)
        async with guard.slot(address):
            issued = await login(
                services.sessions,
                data.username,
                data.password,
                services.settings.session_ttl_seconds,
            )
    except Blocked as exc:
        services.metrics.logins.labels("throttled").inc()
        raise ApiError(ErrorCode.RATE_LIMITED, str(exc)) from None
    except Busy as exc:
        services.metrics.logins.labels("busy").inc()
        raise ApiError(ErrorCode.UNAVAILABLE, str(exc), retry_after=1) from None
    except AuthenticationError as exc:
        await guard.record_failure(address, data.username)
        services.metrics.logins.labels("refused").inc()
        raise ApiError(ErrorCode.UNAUTHENTICATED, str(exc)) from None
    services.metrics.logins.labels("ok").inc()
    return json_ok(
        token=issued.token,
        expires_at=issued.expires_at.isoformat(),
        user=directory.user_dict(issued.user),
    )


async def api_logout(request: web.Request) -> web.Response:
    """End the session and disconnect the sockets it opened, in every process (this one at
    once, the others by their revocation sweep)."""
    services = services_of(request.app)
    token = bearer_token(request)
    await logout(services.sessions, token)
    disconnected = await disconnect_session(services, sha256_hex(token))
    return json_ok(disconnected=disconnected)


async def api_me(request: web.Request) -> web.Response:
    services = services_of(request.app)
    principal = await require_principal(request, Role)
    async with services.sessions() as session:
        user = await directory.get_user(session, principal.id)
    assert user is not None
    return json_ok(user=directory.user_dict(user))


# --- administration -----------------------------------------------------------------------


def _directory_error(exc: directory.DirectoryError) -> ApiError:
    return ApiError(ErrorCode(exc.code), exc.message)


async def admin_list(request: web.Request) -> web.Response:
    services = services_of(request.app)
    await require_principal(request, {Role.ADMIN})
    kind = request.match_info["kind"]
    async with services.sessions() as session:
        if kind == "offices":
            items = [directory.office_dict(o) for o in await directory.list_offices(session)]
        elif kind == "endpoints":
            items = [directory.endpoint_dict(e) for e in await directory.list_endpoints(session)]
        elif kind == "users":
            items = [directory.user_dict(u) for u in await directory.list_users(session)]
        elif kind == "authorities":
            items = [directory.authority_dict(a) for a in await directory.list_authorities(session)]
        else:
            raise ApiError(ErrorCode.NOT_FOUND, f"no such collection {kind!r}")
    return json_ok(items=items)


async def admin_create(request: web.Request) -> web.Response:
    services = services_of(request.app)
    await require_principal(request, {Role.ADMIN})
    kind = request.match_info["kind"]
    try:
        async with services.sessions() as session:
            extra: dict[str, Any] = {}
            item: dict[str, Any]
            if kind == "offices":
                office = await directory.create_office(
                    session, await read_json(request, directory.OfficeCreate)
                )
                item = directory.office_dict(office)
            elif kind == "endpoints":
                endpoint, credential = await directory.create_endpoint(
                    session, await read_json(request, directory.EndpointCreate)
                )
                item = directory.endpoint_dict(endpoint)
                extra["credential"] = credential  # shown once, never stored
            elif kind == "users":
                user = await directory.create_user(
                    session, await read_json(request, directory.UserCreate)
                )
                item = directory.user_dict(user)
            elif kind == "authorities":
                authority = await directory.create_authority(
                    session, await read_json(request, directory.AuthorityCreate)
                )
                item = directory.authority_dict(authority)
            else:
                raise ApiError(ErrorCode.NOT_FOUND, f"no such collection {kind!r}")
            await session.commit()
    except directory.DirectoryError as exc:
        raise _directory_error(exc) from None
    return web.json_response({"ok": True, "item": item, **extra}, status=201)


_SINGULAR: dict[str, directory.EnablableKind] = {
    "offices": "office",
    "endpoints": "endpoint",
    "users": "user",
    "authorities": "authority",
}


async def admin_set_enabled(request: web.Request) -> web.Response:
    services = services_of(request.app)
    await require_principal(request, {Role.ADMIN})
    kind = _SINGULAR.get(request.match_info["kind"])
    action = request.match_info["action"]
    if kind is None or action not in ("enable", "disable"):
        raise ApiError(ErrorCode.NOT_FOUND, "no such resource")
    ident = path_id(request, "id", "resource")
    try:
        async with services.sessions() as session:
            await directory.set_enabled(session, kind, ident, action == "enable")
            await session.commit()
    except directory.DirectoryError as exc:
        raise _directory_error(exc) from None
    disconnected = 0
    extra: dict[str, Any] = {}
    if action == "disable" and kind in ("user", "endpoint"):
        disconnected = await disconnect_principal(services, kind, ident)
    elif action == "disable" and kind == "office":
        from signaling.flow.office_closure import close_office

        closure, disconnected = await close_office(services, ident)
        extra = closure.summary()
    return json_ok(id=ident, enabled=action == "enable", disconnected=disconnected, **extra)


async def admin_reset_credential(request: web.Request) -> web.Response:
    services = services_of(request.app)
    await require_principal(request, {Role.ADMIN})
    try:
        ident = path_id(request, "id", "endpoint")
        async with services.sessions() as session:
            endpoint, credential = await directory.reset_endpoint_credential(session, ident)
            await session.commit()
    except ValueError:
        raise ApiError(ErrorCode.NOT_FOUND, "no such endpoint") from None
    except directory.DirectoryError as exc:
        raise _directory_error(exc) from None
    # A kiosk holding the old credential must not stay connected.
    await disconnect_principal(services, "endpoint", ident)
    return json_ok(item=directory.endpoint_dict(endpoint), credential=credential)


# Languages an administrator can give experts and interpreters (ISO 639-3), named in the three
# UI languages; a code in use that is not here is listed too, named by its code.
LANGUAGES: dict[str, tuple[str, str, str]] = {
    "fin": ("suomi", "finska", "Finnish"),
    "swe": ("ruotsi", "svenska", "Swedish"),
    "eng": ("englanti", "engelska", "English"),
    "fse": ("suomalainen viittomakieli", "finskt teckenspråk", "Finnish Sign Language"),
    "fss": (
        "suomenruotsalainen viittomakieli",
        "finlandssvenskt teckenspråk",
        "Finland-Swedish Sign Language",
    ),
    "sme": ("pohjoissaame", "nordsamiska", "Northern Sami"),
    "smn": ("inarinsaame", "enaresamiska", "Inari Sami"),
    "sms": ("koltansaame", "skoltsamiska", "Skolt Sami"),
    "rus": ("venäjä", "ryska", "Russian"),
    "est": ("viro", "estniska", "Estonian"),
    "ukr": ("ukraina", "ukrainska", "Ukrainian"),
    "ara": ("arabia", "arabiska", "Arabic"),
    "som": ("somali", "somaliska", "Somali"),
    "fas": ("persia", "persiska", "Persian"),
    "prs": ("dari", "dari", "Dari"),
    "kur": ("kurdi", "kurdiska", "Kurdish"),
    "tur": ("turkki", "turkiska", "Turkish"),
    "sqi": ("albania", "albanska", "Albanian"),
    "vie": ("vietnam", "vietnamesiska", "Vietnamese"),
    "tha": ("thai", "thailändska", "Thai"),
    "zho": ("kiina", "kinesiska", "Chinese"),
    "deu": ("saksa", "tyska", "German"),
    "fra": ("ranska", "franska", "French"),
    "spa": ("espanja", "spanska", "Spanish"),
}


async def admin_languages(request: web.Request) -> web.Response:
    """The languages to choose from: the known ones and any code a user already has."""
    from sqlalchemy import select

    from signaling.flow.flow_common import SIGN_LANGUAGES
    from signaling.store.models import UserLanguage

    services = services_of(request.app)
    await require_principal(request, {Role.ADMIN})
    async with services.sessions() as session:
        used = set((await session.execute(select(UserLanguage.code).distinct())).scalars())
    items = []
    for code in [*LANGUAGES, *sorted(used - set(LANGUAGES))]:
        fi, sv, en = LANGUAGES.get(code, (code, code, code))
        items.append(
            {
                "code": code,
                "name_fi": fi,
                "name_sv": sv,
                "name_en": en,
                "sign_language": code in SIGN_LANGUAGES,
                "in_use": code in used,
            }
        )
    return json_ok(items=items)


LOG_PAGE_MAX = 200


def _query_int(request: web.Request, name: str, default: int | None, low: int, high: int) -> Any:
    value = request.query.get(name, "")
    if value == "":
        return default
    # isascii: str.isdigit() takes "²", which int() refuses.
    digits = value.isascii() and value.isdigit() and len(value) <= 12
    if not digits or not low <= int(value) <= high:
        raise ApiError(ErrorCode.INVALID, f"{name} must be an integer from {low} to {high}")
    return int(value)


def _query_date(request: web.Request, name: str) -> Any:
    from datetime import date

    value = request.query.get(name, "")
    if value == "":
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(ErrorCode.INVALID, f"{name} must be a date like 2026-11-23") from None


async def admin_service_log(request: web.Request) -> web.Response:
    """A page of the service log, newest first, for the administrator's view:

        GET /api/admin/service-log?office_id=&authority_id=&kind=service|document
            &from=YYYY-MM-DD&to=YYYY-MM-DD&offset=0&limit=25

    Dates are Finnish calendar days of filing. Office and authority are those of the record's
    call. Each item has the entry's summary fields and its whole `body`."""
    from datetime import datetime, time, timedelta

    from sqlalchemy import func, select

    from signaling.records.statistics import LOCAL_ZONE
    from signaling.store.flow_models import Call, ServiceLogEntry
    from signaling.store.models import Authority, Office

    services = services_of(request.app)
    await require_principal(request, {Role.ADMIN})
    office_id = query_id(request, "office_id")
    authority_id = query_id(request, "authority_id")
    offset = _query_int(request, "offset", 0, 0, 10**9)
    limit = _query_int(request, "limit", 25, 1, LOG_PAGE_MAX)
    kind = request.query.get("kind", "")
    if kind not in ("", "service", "document"):
        raise ApiError(ErrorCode.INVALID, "kind must be service or document")
    start, end = _query_date(request, "from"), _query_date(request, "to")

    def utc_text(day: Any) -> str:
        local = datetime.combine(day, time(0), tzinfo=LOCAL_ZONE)
        return local.astimezone(UTC).isoformat()

    conditions: list[Any] = []
    if office_id is not None:
        conditions.append(Call.office_id == office_id)
    if authority_id is not None:
        conditions.append(Call.authority_id == authority_id)
    if kind:
        conditions.append(ServiceLogEntry.kind == kind)
    if start is not None:
        conditions.append(ServiceLogEntry.filed_at >= utc_text(start))
    if end is not None:
        conditions.append(ServiceLogEntry.filed_at < utc_text(end + timedelta(days=1)))
    joined = select(ServiceLogEntry.seq).outerjoin(Call, Call.id == ServiceLogEntry.call_id)
    async with services.sessions() as session:
        total = (
            await session.execute(
                select(func.count()).select_from(joined.where(*conditions).subquery())
            )
        ).scalar_one()
        rows = await session.execute(
            select(ServiceLogEntry, Call.office_id, Call.authority_id)
            .outerjoin(Call, Call.id == ServiceLogEntry.call_id)
            .where(*conditions)
            .order_by(ServiceLogEntry.seq.desc())
            .offset(offset)
            .limit(limit)
        )
        found = list(rows)
        offices = {o.id: o.name for o in (await session.execute(select(Office))).scalars()}
        authorities = {a.id: a for a in (await session.execute(select(Authority))).scalars()}
    items = []
    for entry, call_office, call_authority in found:
        body = json.loads(entry.record)
        office = body.get("office_id", call_office)
        authority = authorities.get(body.get("authority_id", call_authority))
        items.append(
            {
                "seq": entry.seq,
                "kind": entry.kind,
                "filed_at": entry.filed_at,
                "call_id": entry.call_id,
                "office_id": office,
                "office_name": offices.get(office, "") if isinstance(office, int) else "",
                "authority_id": authority.id if authority else None,
                "authority_code": authority.code if authority else "",
                "authority": directory.authority_dict(authority) if authority else None,
                "signed": entry.signature is not None,
                "hash": entry.hash,
                "body": body,
            }
        )
    return json_ok(total=total, offset=offset, limit=limit, items=items)


def add_routes(app: web.Application) -> None:
    settings = services_of(app).settings
    guard = LoginGuard(settings.login_hash_concurrency, settings.login_queue_limit)
    app[GUARD_KEY] = guard
    services_of(app).extras["login_guard"] = guard
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/api/login", api_login)
    app.router.add_post("/api/logout", api_logout)
    app.router.add_get("/api/me", api_me)
    # Before `/api/admin/{kind}`, which would take these names for collections.
    app.router.add_get("/api/admin/languages", admin_languages)
    app.router.add_get("/api/admin/service-log", admin_service_log)
    app.router.add_get("/api/admin/{kind}", admin_list)
    app.router.add_post("/api/admin/{kind}", admin_create)
    app.router.add_post("/api/admin/endpoints/{id}/credential", admin_reset_credential)
    app.router.add_post("/api/admin/{kind}/{id}/{action}", admin_set_enabled)
