"""Who is behind a socket or a request: the roles and the principal (a person, a kiosk or a
guest of one remote appointment). Below everything that authenticates or authorises.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


class Role(StrEnum):
    EXPERT = "expert"
    INTERPRETER = "interpreter"
    CLERK = "clerk"
    ADMIN = "admin"
    ENDPOINT = "endpoint"  # a kiosk device, not a person
    # The customer at home (issue 18): a guest of one remote appointment, no account
    # (signaling/flow/remote_customer.py); kind "guest", rights only in his own call.
    CUSTOMER = "customer"

@dataclass(frozen=True)
class Principal:
    """Who is behind a socket: a user (expert, interpreter, clerk, admin) or a kiosk."""

    kind: str  # "user" or "endpoint"
    id: int
    role: Role
    name: str
    office_id: int | None = None  # an endpoint's office; a clerk's office
    authority_ids: frozenset[int] = frozenset()  # an expert's authorities
    languages: frozenset[str] = frozenset()  # ISO 639-3 codes
    # An expert's municipality: of a municipal authority he serves only its offices' customers.
    municipality: str | None = None
