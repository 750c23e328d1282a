"""The identity data model: authorities, offices, their kiosk endpoints, users and sessions.

Schema changes go through alembic (`signaling/migrations/versions/0001_identity.py` created
these tables); keep the two in step.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, Column, ForeignKey, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from signaling.db import Base, UTCDateTime, utcnow

# ISO 639-3: three lower-case letters (e.g. fin, swe, ara, fse Finnish Sign Language,
# fss Finland-Swedish Sign Language).
LANGUAGE_CODE = re.compile(r"^[a-z]{3}$")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


class UserRole(StrEnum):
    EXPERT = "expert"
    INTERPRETER = "interpreter"
    CLERK = "clerk"
    ADMIN = "admin"


class UserPresence(StrEnum):
    """What a person has said about taking calls; kept across restarts."""

    AVAILABLE = "available"
    BUSY = "busy"
    AWAY = "away"
    OFFLINE = "offline"


class EndpointPresence(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class UiLanguage(StrEnum):
    FI = "fi"
    SV = "sv"
    EN = "en"


def validate_language_code(code: str) -> str:
    if not isinstance(code, str) or not LANGUAGE_CODE.match(code):
        raise ValueError(f"{code!r} is not an ISO 639-3 language code (three letters a-z)")
    return code


expert_authorities = Table(
    "expert_authorities",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("authority_id", ForeignKey("authorities.id", ondelete="CASCADE"), primary_key=True),
)


class Authority(Base):
    """A commissioning authority whose experts serve remotely (Kela, Poliisi, ...)."""

    __tablename__ = "authorities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name_fi: Mapped[str] = mapped_column(String(200))
    name_sv: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)

    def name(self, language: str) -> str:
        return {"sv": self.name_sv, "en": self.name_en}.get(language, self.name_fi)


class Office(Base):
    """A one-stop service office (yhteispalvelupiste) hosting kiosks."""

    __tablename__ = "offices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    municipality: Mapped[str] = mapped_column(String(100))
    default_language: Mapped[str] = mapped_column(String(2), default=UiLanguage.FI.value)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Optional site/region label: its calls go to a relay node with the same label when one
    # is live (signaling/transport/relay_placement.py).
    relay_site: Mapped[str | None] = mapped_column(String(64), nullable=True)

    endpoints: Mapped[list[Endpoint]] = relationship(back_populates="office")

    @validates("default_language")
    def _check_language(self, _key: str, value: str) -> str:
        return UiLanguage(value).value


class Endpoint(Base):
    """A kiosk of an office. It authenticates with a device credential (only its hash kept)."""

    __tablename__ = "endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    credential_hash: Mapped[str] = mapped_column(String(128))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    presence: Mapped[str] = mapped_column(String(16), default=EndpointPresence.OFFLINE.value)
    presence_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    office: Mapped[Office] = relationship(back_populates="endpoints")


class User(Base):
    """A person: expert, interpreter, clerk (of one office) or administrator."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    office_id: Mapped[int | None] = mapped_column(
        ForeignKey("offices.id", ondelete="SET NULL"), nullable=True, index=True
    )
    # The status the person chose; `online` says whether any socket of theirs is connected.
    presence: Mapped[str] = mapped_column(String(16), default=UserPresence.OFFLINE.value)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    presence_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # PEM/base64 public key for verifying the person's signatures on service records.
    signing_public_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The municipality an expert of a municipal authority works for (0008_service_hours): he
    # serves only the customers of that municipality's offices (signaling/flow/office_offer.py).
    municipality: Mapped[str | None] = mapped_column(String(100), nullable=True)

    authorities: Mapped[list[Authority]] = relationship(secondary=expert_authorities)
    languages: Mapped[list[UserLanguage]] = relationship(
        cascade="all, delete-orphan", back_populates="user"
    )

    @validates("role")
    def _check_role(self, _key: str, value: str) -> str:
        return UserRole(value).value

    @validates("presence")
    def _check_presence(self, _key: str, value: str) -> str:
        return UserPresence(value).value

    @validates("username")
    def _check_username(self, _key: str, value: str) -> str:
        if not USERNAME.match(value):
            raise ValueError(
                f"username {value!r}: 2-64 characters a-z, 0-9, '.', '_', '-', "
                "starting with a letter or digit"
            )
        return value

    @property
    def language_codes(self) -> list[str]:
        return sorted(lang.code for lang in self.languages)


class UserLanguage(Base):
    """A language an expert or interpreter works in (ISO 639-3)."""

    __tablename__ = "user_languages"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(String(3), primary_key=True)

    user: Mapped[User] = relationship(back_populates="languages")

    @validates("code")
    def _check_code(self, _key: str, value: str) -> str:
        return validate_language_code(value)


class UserSession(Base):
    """A login session. Only the SHA-256 of the bearer token is stored."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
