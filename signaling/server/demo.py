"""Demo data for `etapalvelu serve --demo`: one office, its kiosk, and one person per role.

The passwords and the kiosk credential are FIXED and printed; that is only acceptable because
demo mode is for trying the service on one machine. Seeding is idempotent: a restart finds
the demo rows by name and resets their credentials to these values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from signaling.directory import directory
from signaling.directory.identity import hash_password, sha256_hex
from signaling.store.models import Authority, Endpoint, Office, User, UserLanguage, UserRole

DEMO_OFFICE = "Kirjasto Kallio, Helsinki"
DEMO_MUNICIPALITY = "Helsinki"
DEMO_ENDPOINT = "Kallio kioski 1"
DEMO_ENDPOINT_CREDENTIAL = "demo-kiosk-credential-not-for-production"
# One authority with service hours at the demo office, to show them on the kiosk (issue 17);
# the others stay open at all times.
DEMO_HOURS_AUTHORITY = "dvv"
DEMO_WEEKLY_HOURS = ("mon-thu 09:00-15:00", "fri 09:00-12:00")


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    display_name: str
    role: str
    authorities: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    of_office: bool = False
    # Experts of a municipal authority serve their municipality's offices only.
    municipality: str | None = None


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("kela", "kela-demo", "Kaisa Kela-asiantuntija", "expert", ("kela",), ("fin", "swe")),
    DemoUser(
        "rakennus",
        "rakennus-demo",
        "Risto Rakennustarkastaja",
        "expert",
        ("rakennusvalvonta",),
        ("fin",),
        municipality=DEMO_MUNICIPALITY,
    ),
    DemoUser("tulkki", "tulkki-demo", "Tuula Tulkki", "interpreter", (), ("fse", "ara", "fin")),
    DemoUser("sihteeri", "sihteeri-demo", "Sanna Palvelusihteeri", "clerk", (), (), True),
    DemoUser("admin", "admin-demo", "Aino Ylläpitäjä", "admin"),
)


@dataclass
class DemoCredentials:
    office_id: int
    endpoint_id: int
    endpoint_credential: str
    # username -> password
    passwords: dict[str, str] = field(default_factory=dict)
    # username -> user id
    user_ids: dict[str, int] = field(default_factory=dict)

    def kiosk_fragment(self) -> str:
        return f"#endpoint={self.endpoint_id}&credential={self.endpoint_credential}"


@cache
def _demo_hash(password: str) -> str:
    # argon2 is slow on purpose; tests seed demo data many times in one process.
    return hash_password(password)


async def seed_demo(sessions: async_sessionmaker[AsyncSession]) -> DemoCredentials:
    """Create (or refresh) the demo office, kiosk and people. Needs a migrated database."""
    async with sessions() as session:
        office = (
            (await session.execute(select(Office).where(Office.name == DEMO_OFFICE)))
            .scalars()
            .first()
        )
        if office is None:
            office = await directory.create_office(
                session,
                directory.OfficeCreate(
                    name=DEMO_OFFICE, municipality=DEMO_MUNICIPALITY, default_language="fi"
                ),
            )
        office.enabled = True
        endpoint = (
            (
                await session.execute(
                    select(Endpoint).where(
                        Endpoint.office_id == office.id, Endpoint.name == DEMO_ENDPOINT
                    )
                )
            )
            .scalars()
            .first()
        )
        if endpoint is None:
            endpoint, _ = await directory.create_endpoint(
                session,
                directory.EndpointCreate(office_id=office.id, name=DEMO_ENDPOINT),
                credential=DEMO_ENDPOINT_CREDENTIAL,
            )
        endpoint.credential_hash = sha256_hex(DEMO_ENDPOINT_CREDENTIAL)
        endpoint.enabled = True
        credentials = DemoCredentials(
            office_id=office.id,
            endpoint_id=endpoint.id,
            endpoint_credential=DEMO_ENDPOINT_CREDENTIAL,
        )
        for demo in DEMO_USERS:
            user = await _seed_user(session, demo, office.id)
            credentials.passwords[demo.username] = demo.password
            credentials.user_ids[demo.username] = user.id
        await _seed_hours(session, office)
        await session.commit()
        return credentials


async def _seed_hours(session: AsyncSession, office: Office) -> None:
    from signaling.db import utcnow
    from signaling.flow import office_offer
    from signaling.store.offer_models import ServiceHoursRule

    authority = (
        await session.execute(select(Authority).where(Authority.code == DEMO_HOURS_AUTHORITY))
    ).scalar_one_or_none()
    if authority is None:
        return
    if await session.get(ServiceHoursRule, (office.id, authority.id)) is not None:
        return
    hours, _ = office_offer.parse_rules(list(DEMO_WEEKLY_HOURS), [], [], True)
    await office_offer.set_hours(session, office, authority, hours, utcnow())


async def _seed_user(session: AsyncSession, demo: DemoUser, office_id: int) -> User:
    password_hash = _demo_hash(demo.password)
    user = (
        await session.execute(select(User).where(User.username == demo.username))
    ).scalar_one_or_none()
    if user is None:
        return await directory.create_user(
            session,
            directory.UserCreate(
                username=demo.username,
                display_name=demo.display_name,
                role=UserRole(demo.role),
                password=demo.password,
                office_id=office_id if demo.of_office else None,
                authorities=list(demo.authorities),
                languages=list(demo.languages),
                municipality=demo.municipality,
            ),
            password_hash=password_hash,
        )
    # Refresh what a previous run (or someone playing with the admin pages) may have changed.
    user.password_hash = password_hash
    user.enabled = True
    user.role = demo.role
    user.municipality = demo.municipality
    await session.refresh(user, ["authorities", "languages"])
    if demo.authorities:
        user.authorities = list(
            (
                await session.execute(select(Authority).where(Authority.code.in_(demo.authorities)))
            ).scalars()
        )
    if {lang.code for lang in user.languages} != set(demo.languages):
        user.languages = [UserLanguage(code=code) for code in demo.languages]
    return user
