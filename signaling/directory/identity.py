"""Who someone is: passwords, session tokens and kiosk device credentials.

- Passwords are argon2id hashes (argon2-cffi). Hashing and verifying take tens of
  milliseconds of CPU on purpose, so they run in an executor, never on the event loop.
- A login yields a random bearer token valid `session_ttl_seconds`; only its SHA-256 is stored,
  so a copy of the database does not hold usable tokens.
- A kiosk's device credential is 256 random bits issued at enrolment and shown once. Being
  high-entropy it needs no slow hash: its SHA-256 is stored and compared in constant time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from signaling.db import DB_INT_MAX, utcnow
from signaling.directory.principals import Principal, Role
from signaling.store.models import Endpoint, Office, User, UserSession

TOKEN_BYTES = 32

# A hash that verifies nothing, checked when the username is unknown so that a wrong username
# and a wrong password take the same time.
_hasher = PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


class AuthenticationError(Exception):
    """Credentials were missing, wrong, expired or belong to something disabled."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def hash_password_async(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(None, hash_password, password)


async def verify_password_async(password_hash: str, password: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(
        None, verify_password, password_hash, password
    )


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def credential_matches(credential_hash: str, credential: str) -> bool:
    return hmac.compare_digest(credential_hash, sha256_hex(credential))


@dataclass(frozen=True)
class IssuedSession:
    token: str
    expires_at: datetime
    user: User


async def issue_session(session: AsyncSession, user: User, ttl_seconds: int) -> IssuedSession:
    """Create a session for `user` (caller commits)."""
    token = new_secret()
    expires_at = utcnow() + timedelta(seconds=ttl_seconds)
    session.add(UserSession(token_hash=sha256_hex(token), user_id=user.id, expires_at=expires_at))
    return IssuedSession(token, expires_at, user)


async def login(
    sessions: async_sessionmaker[AsyncSession], username: str, password: str, ttl_seconds: int
) -> IssuedSession:
    """Check a username and password; on success open a session. Raises AuthenticationError."""
    async with sessions() as session:
        user = await _load_user(session, User.username == username)
        if user is None:
            await verify_password_async(_dummy_hash(), password)
            raise AuthenticationError("wrong username or password")
        if not await verify_password_async(user.password_hash, password):
            raise AuthenticationError("wrong username or password")
        if not user.enabled:
            raise AuthenticationError("this account is disabled")
        if not await office_allows(session, user):
            raise AuthenticationError("this account's office is disabled")
        issued = await issue_session(session, user, ttl_seconds)
        # Expired sessions of this user are of no further use.
        await session.execute(
            delete(UserSession).where(
                UserSession.user_id == user.id, UserSession.expires_at < utcnow()
            )
        )
        await session.commit()
        return issued


async def logout(sessions: async_sessionmaker[AsyncSession], token: str) -> None:
    async with sessions() as session:
        await session.execute(
            delete(UserSession).where(UserSession.token_hash == sha256_hex(token))
        )
        await session.commit()


async def _load_user(session: AsyncSession, *where: object) -> User | None:
    result = await session.execute(
        select(User)
        .where(*where)  # type: ignore[arg-type]
        .options(selectinload(User.authorities), selectinload(User.languages))
    )
    return result.scalar_one_or_none()


async def user_for_token(session: AsyncSession, token: str) -> User:
    """The enabled user behind a live session token. Raises AuthenticationError."""
    return (await session_for_token(session, token))[0]


async def session_for_token(session: AsyncSession, token: str) -> tuple[User, datetime]:
    """The enabled user behind a live session token, and when the session expires."""
    if not isinstance(token, str) or not 16 <= len(token) <= 256:
        raise AuthenticationError("invalid session token")
    row = (
        await session.execute(
            select(UserSession).where(UserSession.token_hash == sha256_hex(token))
        )
    ).scalar_one_or_none()
    if row is None:
        raise AuthenticationError("invalid session token")
    if row.expires_at <= utcnow():
        raise AuthenticationError("session expired; log in again")
    user = await _load_user(session, User.id == row.user_id)
    if user is None or not user.enabled:
        raise AuthenticationError("this account is disabled")
    if not await office_allows(session, user):
        raise AuthenticationError("this account's office is disabled")
    return user, row.expires_at


async def office_allows(session: AsyncSession, who: User | Endpoint) -> bool:
    """False for a kiosk, or a clerk, whose office is disabled: both work only for it.

    Experts and interpreters serve every office, so their (optional) office does not bind them.
    """
    if isinstance(who, User) and who.role != Role.CLERK:
        return True
    if who.office_id is None:
        return True
    office = await session.get(Office, who.office_id, populate_existing=True)
    return office is not None and bool(office.enabled)


def principal_for_user(user: User) -> Principal:
    return Principal(
        kind="user",
        id=user.id,
        role=Role(user.role),
        name=user.display_name,
        office_id=user.office_id,
        authority_ids=frozenset(a.id for a in user.authorities if a.enabled),
        languages=frozenset(lang.code for lang in user.languages),
        municipality=user.municipality,
    )


def principal_for_endpoint(endpoint: Endpoint) -> Principal:
    return Principal(
        kind="endpoint",
        id=endpoint.id,
        role=Role.ENDPOINT,
        name=endpoint.name,
        office_id=endpoint.office_id,
    )


async def authenticate(sessions: async_sessionmaker[AsyncSession], auth: object) -> Principal:
    """Turn socket.io `auth` data into a Principal: `{token}` for a person or
    `{endpoint_id, credential}` for a kiosk. Raises AuthenticationError."""
    return (await authenticate_until(sessions, auth))[0]


@dataclass(frozen=True)
class SocketIdentity:
    """Who authenticated a socket, until when, and with which login session (SHA-256 of the
    token; None for a kiosk) — so that a logout can disconnect the sockets it opened."""

    principal: Principal
    expires_at: datetime | None
    session_hash: str | None


async def authenticate_until(
    sessions: async_sessionmaker[AsyncSession], auth: object
) -> tuple[Principal, datetime | None]:
    """Like `authenticate`, also returning when a person's session expires (None: a kiosk)."""
    identity = await authenticate_socket(sessions, auth)
    return identity.principal, identity.expires_at


async def authenticate_socket(
    sessions: async_sessionmaker[AsyncSession], auth: object
) -> SocketIdentity:
    """Turn socket.io `auth` data into a SocketIdentity. Raises AuthenticationError."""
    if not isinstance(auth, dict):
        raise AuthenticationError("credentials required: {token} or {endpoint_id, credential}")
    async with sessions() as session:
        if set(auth) == {"token"}:
            user, expires_at = await session_for_token(session, auth["token"])
            return SocketIdentity(principal_for_user(user), expires_at, sha256_hex(auth["token"]))
        if set(auth) == {"endpoint_id", "credential"}:
            endpoint_id, credential = auth["endpoint_id"], auth["credential"]
            if isinstance(endpoint_id, str) and endpoint_id.isdigit():
                endpoint_id = int(endpoint_id)
            if (
                not isinstance(endpoint_id, int)
                or isinstance(endpoint_id, bool)
                or not isinstance(credential, str)
                or not 0 < endpoint_id <= DB_INT_MAX
                or len(credential) > 256
            ):
                raise AuthenticationError("invalid endpoint credential")
            endpoint = await session.get(Endpoint, endpoint_id)
            if endpoint is None or not credential_matches(endpoint.credential_hash, credential):
                raise AuthenticationError("invalid endpoint credential")
            if not endpoint.enabled:
                raise AuthenticationError("this endpoint is disabled")
            if not await office_allows(session, endpoint):
                raise AuthenticationError("this endpoint's office is disabled")
            return SocketIdentity(principal_for_endpoint(endpoint), None, None)
    raise AuthenticationError("credentials required: {token} or {endpoint_id, credential}")
