"""What every HTTP handler shares: the app's services, JSON answers and refusals, reading a
JSON body against a schema, the caller's principal and address.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Iterable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from signaling.db import DB_INT_MAX, parse_db_id
from signaling.directory.identity import (
    AuthenticationError,
    principal_for_user,
    user_for_token,
)
from signaling.directory.principals import Principal, Role
from signaling.transport.protocol import ErrorCode
from signaling.transport.services import Services

log = logging.getLogger(__name__)

SERVICES_KEY = web.AppKey("services", Services)

M = TypeVar("M", bound=BaseModel)

_STATUS = {
    ErrorCode.INVALID: 400,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}

def services_of(app: web.Application) -> Services:
    return app[SERVICES_KEY]

class ApiError(web.HTTPException):
    """An error answered as JSON `{ok: false, error: {code, message}}`."""

    def __init__(self, code: ErrorCode, message: str, retry_after: int | None = None) -> None:
        self.status_code = _STATUS.get(code, 400)
        super().__init__(
            text=json.dumps({"ok": False, "error": {"code": str(code), "message": message}}),
            content_type="application/json",
            headers={"Retry-After": str(retry_after)} if retry_after is not None else None,
        )

async def read_json(request: web.Request, schema: type[M], limit: int | None = None) -> M:
    """Read and validate a JSON body of at most `limit` bytes (default max_message_bytes)."""
    limit = limit or services_of(request.app).settings.max_message_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(ErrorCode.TOO_LARGE, f"body larger than {limit} bytes")
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise ApiError(ErrorCode.TOO_LARGE, f"body larger than {limit} bytes")
    try:
        data = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(ErrorCode.INVALID, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise ApiError(ErrorCode.INVALID, "the body must be a JSON object")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        parts = [
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)[:5]
        ]
        raise ApiError(ErrorCode.INVALID, "; ".join(parts)) from None

def path_id(request: web.Request, name: str, what: str) -> int:
    """The id in the URL's path segment `name`. Anything else, or one beyond the database's
    integer, names no `what`: `not_found` (never a query that PostgreSQL refuses)."""
    ident = parse_db_id(request.match_info[name])
    if ident is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"no such {what}")
    return ident


def query_id(request: web.Request, name: str) -> int | None:
    """The id in the query parameter `name` (None when it is missing or empty); anything else,
    or one beyond the database's integer, is `invalid`."""
    value = request.query.get(name, "")
    if value == "":
        return None
    ident = parse_db_id(value)
    if ident is None:
        raise ApiError(ErrorCode.INVALID, f"{name} must be an id from 1 to {DB_INT_MAX}")
    return ident


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(ErrorCode.UNAUTHENTICATED, "send Authorization: Bearer <session token>")
    return token.strip()

async def require_principal(request: web.Request, roles: Iterable[Role]) -> Principal:
    """The person behind the request's session token, if their role is one of `roles`."""
    services = services_of(request.app)
    token = bearer_token(request)
    try:
        async with services.sessions() as session:
            principal = principal_for_user(await user_for_token(session, token))
    except AuthenticationError as exc:
        raise ApiError(ErrorCode.UNAUTHENTICATED, str(exc)) from None
    if principal.role not in set(roles):
        raise ApiError(ErrorCode.FORBIDDEN, f"role {principal.role} may not do this")
    return principal

def json_ok(**fields: Any) -> web.Response:
    return web.json_response({"ok": True, **fields})

def _is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False

def client_address(request: web.Request, trusted_proxies: list[str]) -> str:
    """Who sent the request: the peer, or — when the peer is one of our load balancers — the
    nearest address in X-Forwarded-For that is not one of them (each proxy appends the
    address it got the request from, so entries left of an untrusted one could be forged)."""
    remote = request.remote or "?"
    if not trusted_proxies:
        return remote
    networks = [ipaddress.ip_network(item, strict=False) for item in trusted_proxies]

    def trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in networks)

    if not trusted(remote):
        return remote
    forwarded = ",".join(request.headers.getall("X-Forwarded-For", []))
    for item in reversed([part.strip() for part in forwarded.split(",") if part.strip()]):
        try:
            ipaddress.ip_address(item)
        except ValueError:
            return remote  # garbage: count it against the proxy rather than trust it
        if not trusted(item):
            return item
    return remote

@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Unexpected exceptions under /api/ become a JSON `internal` error, logged."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException:
        raise
    except Exception:
        if not request.path.startswith("/api/"):
            raise
        log.exception("%s %s failed", request.method, request.path)
        raise ApiError(ErrorCode.INTERNAL, "internal error; it has been logged") from None
