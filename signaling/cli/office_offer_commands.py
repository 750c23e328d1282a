"""`etapalvelu admin hours|catalogue|municipality …`: what an office offers (issue 17).

    etapalvelu admin hours set --office 1 --authority kela \\
        --weekly "mon-thu 09:00-15:00" --weekly "fri 09:00-12:00" \\
        --exception "2026-12-23 09:00-12:00" --closed 2026-12-24 [--no-public-holidays]
    etapalvelu admin hours show --office 1 [--authority kela] [--json]
    etapalvelu admin hours clear --office 1 --authority kela      # open at all times again
    etapalvelu admin catalogue set --office 1 --authorities kela,vero,kunta \\
        [--languages kela=fin,swe]
    etapalvelu admin catalogue show --office 1 / clear --office 1  # clear: offers everything
    etapalvelu admin municipality office --office 1 Helsinki
    etapalvelu admin municipality user 7 Helsinki                  # empty name clears
    etapalvelu admin desk-services set --office 1 --services assisted_eservice,identity_check
    etapalvelu admin desk-services show --office 1 / clear --office 1  # clear: the global list

`hours set` replaces all of the authority's hours at the office. Rules:
signaling/directory/service_hours.py;
meaning: signaling/flow/office_offer.py. A running server tells the office's kiosks at its next
`flow:sync`; changes through the HTTP API reach them at once.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from signaling.cli.admin_cli import leaf_parser, resource_parser, run_with_session

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


def _show(args: argparse.Namespace, items: list[dict[str, Any]]) -> None:
    if args.json:
        print(json.dumps(items, ensure_ascii=False))
        return
    for item in items:
        if item["always_open"]:
            print(f"{item['authority']}: open at all times (no hours set)")
            continue
        state = "open now" if item["open_now"] else f"closed now; opens {item['opens_at']}"
        print(f"{item['authority']}: {state}")
        for spec in item["weekly"]:
            print(f"  weekly     {spec}")
        for spec in item["exceptions"]:
            print(f"  exception  {spec}")
        for day in item["closed"]:
            print(f"  closed     {day}")
        print(f"  public holidays: {'closed' if item['public_holidays'] else 'weekly hours'}")


def _hours_set(args: argparse.Namespace) -> int:
    from signaling.cli.serve import fail
    from signaling.db import utcnow
    from signaling.directory import directory
    from signaling.flow import office_offer

    try:
        hours, _ = office_offer.parse_rules(
            args.weekly or [], args.exception or [], args.closed or [], not args.no_public_holidays
        )
    except office_offer.OfferError as exc:
        return fail(exc.message)

    async def work(session: AsyncSession) -> int:
        office = await directory.find_office(session, args.office)
        authority = await office_offer.find_authority_code(session, args.authority)
        await office_offer.set_hours(session, office, authority, hours, utcnow())
        _show(args, [office_offer.rules_dict(authority, hours, utcnow())])
        return 0

    return run_with_session(args, work)


def _hours_show(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from signaling.db import utcnow
    from signaling.directory import directory
    from signaling.flow import office_offer
    from signaling.store.models import Authority

    async def work(session: AsyncSession) -> int:
        office = await directory.find_office(session, args.office)
        hours = await office_offer.office_hours(session, office.id)
        if args.authority:
            authorities = [await office_offer.find_authority_code(session, args.authority)]
        else:
            authorities = list(
                (await session.execute(select(Authority).order_by(Authority.id))).scalars()
            )
        now = utcnow()
        _show(args, [office_offer.rules_dict(a, hours.get(a.id), now) for a in authorities])
        return 0

    return run_with_session(args, work)


def _hours_clear(args: argparse.Namespace) -> int:
    from signaling.directory import directory
    from signaling.flow import office_offer

    async def work(session: AsyncSession) -> int:
        office = await directory.find_office(session, args.office)
        authority = await office_offer.find_authority_code(session, args.authority)
        had = await office_offer.clear_hours(session, office.id, authority.id)
        if args.json:
            print(json.dumps({"authority": authority.code, "cleared": had}))
        else:
            print(f"{authority.code} at {office.name}: open at all times")
        return 0

    return run_with_session(args, work)


def _language_map(items: list[str] | None) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for item in items or []:
        code, eq, languages = item.partition("=")
        if not eq or not code.strip() or not languages.strip():
            raise ValueError(f"--languages {item!r}: write AUTHORITY=LANG,LANG (kela=fin,swe)")
        if code.strip() in result:
            raise ValueError(f"--languages names {code.strip()!r} twice")
        result[code.strip()] = languages.split(",")
    return result


def _catalogue_print(args: argparse.Namespace, item: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(item, ensure_ascii=False))
        return
    if item["all_offered"]:
        print("every authority is offered (no catalogue set)")
        return
    for entry in item["authorities"]:
        if entry["offered"]:
            langs = ",".join(entry["languages"]) or "any language"
            print(f"{entry['code']}: {langs}")


def _catalogue_set(args: argparse.Namespace) -> int:
    from signaling.cli.serve import fail
    from signaling.directory import directory
    from signaling.flow import office_offer

    codes = [c for c in (args.authorities or "").split(",") if c.strip()]
    try:
        languages = _language_map(args.languages)
    except ValueError as exc:
        return fail(str(exc))

    async def work(session: AsyncSession) -> int:
        office = await directory.find_office(session, args.office)
        await office_offer.set_catalogue(session, office, codes, languages)
        _catalogue_print(args, await office_offer.catalogue_dict(session, office))
        return 0

    return run_with_session(args, work)


def _catalogue_show(args: argparse.Namespace) -> int:
    from signaling.directory import directory
    from signaling.flow import office_offer

    async def work(session: AsyncSession) -> int:
        office = await directory.find_office(session, args.office)
        _catalogue_print(args, await office_offer.catalogue_dict(session, office))
        return 0

    return run_with_session(args, work)


def _catalogue_clear(args: argparse.Namespace) -> int:
    from signaling.directory import directory
    from signaling.flow import office_offer

    async def work(session: AsyncSession) -> int:
        office = await directory.find_office(session, args.office)
        await office_offer.clear_catalogue(session, office.id)
        _catalogue_print(args, await office_offer.catalogue_dict(session, office))
        return 0

    return run_with_session(args, work)


def _municipality_office(args: argparse.Namespace) -> int:
    from signaling.directory import directory
    from signaling.flow import office_offer

    async def work(session: AsyncSession) -> int:
        office = await directory.find_office(session, args.office)
        await office_offer.set_office_municipality(session, office, args.name)
        print(json.dumps(directory.office_dict(office), ensure_ascii=False))
        return 0

    return run_with_session(args, work)


def _municipality_user(args: argparse.Namespace) -> int:
    from signaling.directory import directory
    from signaling.flow import office_offer

    async def work(session: AsyncSession) -> int:
        user = await office_offer.set_user_municipality(session, args.id, args.name)
        await session.flush()
        await session.refresh(user, ["authorities", "languages"])
        print(json.dumps(directory.user_dict(user), ensure_ascii=False))
        return 0

    return run_with_session(args, work)


def _desk_print(args: argparse.Namespace, item: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(item, ensure_ascii=False))
        return
    which = "the global list" if item["default"] else "the office's own list"
    print(f"desk services ({which}): {', '.join(item['services'])}")


def _desk_set(args: argparse.Namespace) -> int:
    from signaling.cli.serve import fail
    from signaling.directory import directory
    from signaling.flow import office_offer

    codes = [c.strip() for c in (args.services or "").split(",") if c.strip()]
    if not codes:
        return fail("--services names at least one desk service (clear goes back to all)")

    async def work(session: AsyncSession) -> int:
        office = await directory.find_office(session, args.office)
        await office_offer.set_desk_services(session, office, codes)
        _desk_print(args, await office_offer.desk_services_dict(session, office.id))
        return 0

    return run_with_session(args, work)


def _desk_show(args: argparse.Namespace, clear: bool = False) -> int:
    from signaling.directory import directory
    from signaling.flow import office_offer

    async def work(session: AsyncSession) -> int:
        office = await directory.find_office(session, args.office)
        if clear:
            await office_offer.set_desk_services(session, office, [])
        _desk_print(args, await office_offer.desk_services_dict(session, office.id))
        return 0

    return run_with_session(args, work)


def register_admin(admin: Any) -> None:
    actions = resource_parser(admin, "hours", "service hours of an authority at an office")
    p = leaf_parser(actions, "set", "replace an authority's hours at an office")
    p.add_argument("--office", required=True, help="office id or exact name")
    p.add_argument("--authority", required=True, help="authority code, e.g. kela")
    p.add_argument(
        "--weekly", action="append", help='"mon-thu 09:00-15:00" (repeatable; ma-to also)'
    )
    p.add_argument("--exception", action="append", help='other hours: "2026-12-23 09:00-12:00"')
    p.add_argument("--closed", action="append", help="closed: 2026-12-24 or 2026-07-01..2026-07-31")
    p.add_argument(
        "--no-public-holidays",
        action="store_true",
        help="serve on Finnish public holidays too (default: closed on them)",
    )
    p.set_defaults(func=_hours_set)
    p = leaf_parser(actions, "show", "show the hours at an office")
    p.add_argument("--office", required=True)
    p.add_argument("--authority")
    p.set_defaults(func=_hours_show)
    p = leaf_parser(actions, "clear", "remove an authority's hours (open at all times)")
    p.add_argument("--office", required=True)
    p.add_argument("--authority", required=True)
    p.set_defaults(func=_hours_clear)

    actions = resource_parser(admin, "catalogue", "the authorities an office offers")
    p = leaf_parser(actions, "set", "the office offers exactly these authorities")
    p.add_argument("--office", required=True)
    p.add_argument("--authorities", required=True, help="codes, comma-separated: kela,vero")
    p.add_argument(
        "--languages", action="append", help="AUTHORITY=LANG,LANG, e.g. kela=fin,swe (repeatable)"
    )
    p.set_defaults(func=_catalogue_set)
    p = leaf_parser(actions, "show", "show what the office offers")
    p.add_argument("--office", required=True)
    p.set_defaults(func=_catalogue_show)
    p = leaf_parser(actions, "clear", "the office offers every authority again")
    p.add_argument("--office", required=True)
    p.set_defaults(func=_catalogue_clear)

    actions = resource_parser(
        admin, "municipality", "municipalities of offices and of municipal experts"
    )
    p = leaf_parser(actions, "office", "set an office's municipality")
    p.add_argument("--office", required=True)
    p.add_argument("name")
    p.set_defaults(func=_municipality_office)
    p = leaf_parser(actions, "user", "set the municipality an expert works for (empty clears)")
    p.add_argument("id", type=int)
    p.add_argument("name", nargs="?", default="")
    p.set_defaults(func=_municipality_user)

    actions = resource_parser(admin, "desk-services", "the desk services an office's clerks record")
    p = leaf_parser(actions, "set", "the office's clerks record exactly these desk services")
    p.add_argument("--office", required=True)
    p.add_argument(
        "--services", required=True, help="codes, comma-separated: assisted_eservice,other"
    )
    p.set_defaults(func=_desk_set)
    p = leaf_parser(actions, "show", "show the office's desk services")
    p.add_argument("--office", required=True)
    p.set_defaults(func=_desk_show)
    p = leaf_parser(actions, "clear", "the office's clerks record from the global list again")
    p.add_argument("--office", required=True)
    p.set_defaults(func=lambda args: _desk_show(args, clear=True))
