"""The desk services an office's clerk may record (issue 17): the network's list and each
office's choice from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class DeskService:
    code: str
    name_fi: str
    name_sv: str
    name_en: str

    def view(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": {"fi": self.name_fi, "sv": self.name_sv, "en": self.name_en},
        }

# The desk services an office records (a fixed list to start with; the compensation export
# has a column for each).
DESK_SERVICES: tuple[DeskService, ...] = (
    DeskService(
        "assisted_eservice",
        "Avustettu sähköinen asiointi",
        "Assisterad e-tjänst",
        "Assisted e-service",
    ),
    DeskService("form_handed_over", "Lomake annettu", "Blankett överlämnad", "Form handed over"),
    DeskService(
        "identity_check", "Henkilöllisyyden tarkistus", "Identitetskontroll", "Identity check"
    ),
    DeskService("other", "Muu palvelu", "Annan tjänst", "Other service"),
)

DESK_SERVICE_CODES = tuple(s.code for s in DESK_SERVICES)

async def office_desk_list(session: AsyncSession, office_id: int) -> list[str] | None:
    """The office's own list (in DESK_SERVICES order), or None: the global list."""
    from signaling.store.office_desk_models import OfficeDeskService

    rows = await session.execute(
        select(OfficeDeskService.code).where(OfficeDeskService.office_id == office_id)
    )
    chosen = set(rows.scalars())
    if not chosen:
        return None
    return [code for code in DESK_SERVICE_CODES if code in chosen]

async def office_desk_codes(session: AsyncSession, office_id: int) -> list[str]:
    """What the office's clerks may record."""
    own = await office_desk_list(session, office_id)
    return own if own is not None else list(DESK_SERVICE_CODES)

async def set_office_desk_list(session: AsyncSession, office_id: int, codes: list[str]) -> None:
    """Replace the office's list (empty: back to the global list); ValueError for an unknown
    code, before anything changes. The caller commits."""
    from sqlalchemy import delete

    from signaling.store.office_desk_models import OfficeDeskService

    unknown = sorted({c for c in codes if c not in DESK_SERVICE_CODES})
    if unknown:
        raise ValueError(
            f"unknown desk services {unknown}: choose from {', '.join(DESK_SERVICE_CODES)}"
        )
    await session.execute(delete(OfficeDeskService).where(OfficeDeskService.office_id == office_id))
    for code in sorted(set(codes)):
        session.add(OfficeDeskService(office_id=office_id, code=code))
    await session.flush()
