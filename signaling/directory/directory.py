"""The directory of the service network: offices, kiosk endpoints, users and authorities.

The operations behind both `etapalvelu admin` and the admin REST API, with their input schemas.
Each validates fully before writing and raises `DirectoryError` with a readable message.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from signaling.db import DbId, parse_db_id
from signaling.directory.identity import hash_password_async, new_secret, sha256_hex
from signaling.store.models import (
    USERNAME,
    Authority,
    Endpoint,
    Office,
    User,
    UserLanguage,
    UserRole,
    validate_language_code,
)

MIN_PASSWORD_LENGTH = 8


class DirectoryError(ValueError):
    """A directory change was refused; `code` is `invalid`, `not_found` or `conflict`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OfficeCreate(_Input):
    name: str = Field(min_length=1, max_length=200)
    municipality: str = Field(min_length=1, max_length=100)
    default_language: Literal["fi", "sv", "en"] = "fi"


class EndpointCreate(_Input):
    office_id: DbId
    name: str = Field(min_length=1, max_length=200)


class AuthorityCreate(_Input):
    code: str = Field(pattern=r"^[a-z][a-z0-9_-]{1,31}$")
    name_fi: str = Field(min_length=1, max_length=200)
    name_sv: str = Field(min_length=1, max_length=200)
    name_en: str = Field(min_length=1, max_length=200)


class UserCreate(_Input):
    username: str = Field(min_length=2, max_length=64)
    display_name: str = Field(min_length=1, max_length=200)
    role: UserRole
    password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=1024)
    office_id: DbId | None = None
    authorities: list[str] = Field(default_factory=list, max_length=50)  # authority codes
    languages: list[str] = Field(default_factory=list, max_length=50)  # ISO 639-3
    # An expert of a municipal authority: the municipality whose offices he serves.
    municipality: str | None = Field(default=None, max_length=100)

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if not USERNAME.match(value):
            raise ValueError("2-64 characters a-z, 0-9, '.', '_', '-'")
        return value

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: list[str]) -> list[str]:
        return sorted({validate_language_code(code) for code in value})


# --- serialisation ------------------------------------------------------------------------


def office_dict(office: Office) -> dict[str, Any]:
    return {
        "id": office.id,
        "name": office.name,
        "municipality": office.municipality,
        "default_language": office.default_language,
        "enabled": office.enabled,
        "relay_site": office.relay_site,
    }


def endpoint_dict(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "office_id": endpoint.office_id,
        "name": endpoint.name,
        "enabled": endpoint.enabled,
        "presence": endpoint.presence,
    }


def authority_dict(authority: Authority) -> dict[str, Any]:
    return {
        "id": authority.id,
        "code": authority.code,
        "name_fi": authority.name_fi,
        "name_sv": authority.name_sv,
        "name_en": authority.name_en,
        "enabled": authority.enabled,
    }


def user_dict(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "enabled": user.enabled,
        "office_id": user.office_id,
        "presence": user.presence,
        "online": user.online,
        "authorities": sorted(a.code for a in user.authorities),
        "languages": user.language_codes,
        "municipality": user.municipality,
    }


# --- queries ------------------------------------------------------------------------------


async def list_offices(session: AsyncSession) -> list[Office]:
    return list((await session.execute(select(Office).order_by(Office.id))).scalars())


async def list_endpoints(session: AsyncSession, office_id: int | None = None) -> list[Endpoint]:
    query = select(Endpoint).order_by(Endpoint.id)
    if office_id is not None:
        query = query.where(Endpoint.office_id == office_id)
    return list((await session.execute(query)).scalars())


async def list_authorities(session: AsyncSession) -> list[Authority]:
    return list((await session.execute(select(Authority).order_by(Authority.id))).scalars())


async def list_users(session: AsyncSession, role: str | None = None) -> list[User]:
    query = (
        select(User)
        .order_by(User.id)
        .options(selectinload(User.authorities), selectinload(User.languages))
    )
    if role is not None:
        query = query.where(User.role == role)
    return list((await session.execute(query)).scalars())


async def get_user(session: AsyncSession, user_id: int) -> User | None:
    result = await session.execute(
        select(User)
        .where(User.id == user_id)
        .options(selectinload(User.authorities), selectinload(User.languages))
    )
    return result.scalar_one_or_none()


async def find_office(session: AsyncSession, ref: str | int) -> Office:
    """An office by id or exact name."""
    office: Office | None
    if isinstance(ref, int) or str(ref).isdigit():
        # An id beyond the database's integer (or "²") names no office; PostgreSQL would fail.
        ident = parse_db_id(str(ref))
        office = await session.get(Office, ident) if ident is not None else None
    else:
        office = (await session.execute(select(Office).where(Office.name == ref))).scalars().first()
    if office is None:
        raise DirectoryError("not_found", f"no office {ref!r}")
    return office


# --- changes (the caller commits) ---------------------------------------------------------


async def create_office(session: AsyncSession, data: OfficeCreate) -> Office:
    office = Office(
        name=data.name,
        municipality=data.municipality,
        default_language=data.default_language,
        enabled=True,
    )
    session.add(office)
    await session.flush()
    return office


async def create_endpoint(
    session: AsyncSession, data: EndpointCreate, credential: str | None = None
) -> tuple[Endpoint, str]:
    """Enrol a kiosk. Returns it and its device credential, which is not stored anywhere."""
    office = await session.get(Office, data.office_id)
    if office is None:
        raise DirectoryError("not_found", f"no office {data.office_id}")
    credential = credential or new_secret()
    endpoint = Endpoint(
        office_id=office.id,
        name=data.name,
        credential_hash=sha256_hex(credential),
        enabled=True,
        presence="offline",
    )
    session.add(endpoint)
    await session.flush()
    return endpoint, credential


async def reset_endpoint_credential(
    session: AsyncSession, endpoint_id: int, credential: str | None = None
) -> tuple[Endpoint, str]:
    endpoint = await session.get(Endpoint, endpoint_id)
    if endpoint is None:
        raise DirectoryError("not_found", f"no endpoint {endpoint_id}")
    credential = credential or new_secret()
    endpoint.credential_hash = sha256_hex(credential)
    await session.flush()
    return endpoint, credential


async def create_authority(session: AsyncSession, data: AuthorityCreate) -> Authority:
    exists = (
        await session.execute(select(Authority.id).where(Authority.code == data.code))
    ).scalar_one_or_none()
    if exists is not None:
        raise DirectoryError("conflict", f"authority {data.code!r} exists")
    authority = Authority(**data.model_dump(), enabled=True)
    session.add(authority)
    await session.flush()
    return authority


async def create_user(
    session: AsyncSession, data: UserCreate, password_hash: str | None = None
) -> User:
    exists = (
        await session.execute(select(User.id).where(User.username == data.username))
    ).scalar_one_or_none()
    if exists is not None:
        raise DirectoryError("conflict", f"user {data.username!r} exists")
    if data.role == UserRole.CLERK and data.office_id is None:
        raise DirectoryError("invalid", "a clerk belongs to an office: give office_id")
    if data.office_id is not None and await session.get(Office, data.office_id) is None:
        raise DirectoryError("not_found", f"no office {data.office_id}")
    if data.authorities and data.role != UserRole.EXPERT:
        raise DirectoryError("invalid", "only experts serve authorities")
    if data.municipality and data.role != UserRole.EXPERT:
        raise DirectoryError("invalid", "only experts have a municipality")
    authorities: list[Authority] = []
    if data.authorities:
        found = {
            a.code: a
            for a in (
                await session.execute(select(Authority).where(Authority.code.in_(data.authorities)))
            ).scalars()
        }
        missing = sorted(set(data.authorities) - set(found))
        if missing:
            raise DirectoryError("not_found", f"no authority {', '.join(missing)}")
        authorities = [found[code] for code in sorted(found)]
    user = User(
        username=data.username,
        display_name=data.display_name,
        role=data.role.value,
        password_hash=password_hash or await hash_password_async(data.password),
        enabled=True,
        office_id=data.office_id,
        presence="offline",
        online=False,
        authorities=authorities,
        languages=[UserLanguage(code=code) for code in data.languages],
        municipality=" ".join(data.municipality.split()) or None if data.municipality else None,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise DirectoryError("conflict", f"user {data.username!r} exists") from exc
    return user


EnablableKind = Literal["office", "endpoint", "user", "authority"]
Enablable = Office | Endpoint | User | Authority
_MODELS: dict[str, type[Enablable]] = {
    "office": Office,
    "endpoint": Endpoint,
    "user": User,
    "authority": Authority,
}


async def set_enabled(
    session: AsyncSession, kind: EnablableKind, ident: int, enabled: bool
) -> Office | Endpoint | User | Authority:
    row: Enablable | None = await session.get(_MODELS[kind], ident)
    if row is None:
        raise DirectoryError("not_found", f"no {kind} {ident}")
    row.enabled = enabled
    await session.flush()
    return row
