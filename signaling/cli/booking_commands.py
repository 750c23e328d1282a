"""`etapalvelu admin availability|booking …`: when experts take booked appointments (issue 17).

    etapalvelu admin availability set --user kela --authority kela \\
        --weekly "mon-thu 09:00-12:00" --weekly "fri 09:00-11:00"
    etapalvelu admin availability show [--user kela] [--json]
    etapalvelu admin availability clear --user kela --authority kela
    etapalvelu admin booking slot-length --authority kela --minutes 20   # --default: back to
                                                                         # booking_slot_minutes
    etapalvelu admin booking slots --office 1 --authority kela --language fin [--days 7]

Weekly hours use the service-hours syntax (signaling/directory/service_hours.py), Helsinki time;
experts
are not available on Finnish public holidays. Rules: signaling/booking/booking.py.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from signaling.cli.admin_cli import leaf_parser, resource_parser, run_with_session

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


def _fail_flow(exc: Exception) -> int:
    from signaling.cli.serve import fail

    return fail(getattr(exc, "message", str(exc)))


def _availability_set(args: argparse.Namespace) -> int:
    from signaling.booking import booking
    from signaling.db import utcnow
    from signaling.flow.flow_common import FlowError

    async def work(session: AsyncSession) -> int:
        try:
            expert = await booking.find_expert(session, args.user)
            authority = await booking.find_authority(session, args.authority)
            specs = await booking.set_availability(
                session, expert, authority, args.weekly or [], utcnow()
            )
        except FlowError as exc:
            await session.rollback()
            return _fail_flow(exc)
        item = {"user": expert.username, "authority": authority.code, "weekly": specs}
        if args.json:
            print(json.dumps(item, ensure_ascii=False))
        else:
            print(f"{expert.username} / {authority.code}: {'; '.join(specs) or 'not available'}")
        return 0

    if not args.weekly:
        return _fail_flow(ValueError("give --weekly (use 'availability clear' to remove)"))
    return run_with_session(args, work)


def _availability_show(args: argparse.Namespace) -> int:
    from signaling.booking import booking
    from signaling.flow.flow_common import FlowError

    async def work(session: AsyncSession) -> int:
        user_id = None
        if args.user:
            try:
                user_id = (await booking.find_expert(session, args.user)).id
            except FlowError as exc:
                return _fail_flow(exc)
        items = await booking.availability_of(session, user_id=user_id)
        if args.json:
            print(json.dumps(items, ensure_ascii=False))
        elif not items:
            print("no availability set")
        for item in [] if args.json else items:
            print(f"{item['username']} / {item['authority']}: {'; '.join(item['weekly'])}")
        return 0

    return run_with_session(args, work)


def _availability_clear(args: argparse.Namespace) -> int:
    from signaling.booking import booking
    from signaling.db import utcnow
    from signaling.flow.flow_common import FlowError

    async def work(session: AsyncSession) -> int:
        try:
            expert = await booking.find_expert(session, args.user)
            authority = await booking.find_authority(session, args.authority)
            await booking.set_availability(session, expert, authority, [], utcnow())
        except FlowError as exc:
            await session.rollback()
            return _fail_flow(exc)
        print(f"{expert.username} / {authority.code}: not available")
        return 0

    return run_with_session(args, work)


def _slot_length(args: argparse.Namespace) -> int:
    from signaling.booking import booking
    from signaling.flow.flow_common import FlowError

    if (args.minutes is None) == (not args.default):
        return _fail_flow(ValueError("give --minutes N or --default"))

    async def work(session: AsyncSession) -> int:
        try:
            authority = await booking.find_authority(session, args.authority)
            await booking.set_slot_minutes(session, authority, args.minutes)
        except FlowError as exc:
            await session.rollback()
            return _fail_flow(exc)
        text = f"{args.minutes} minutes" if args.minutes else "the default length"
        print(f"{authority.code}: slots of {text}")
        return 0

    return run_with_session(args, work)


def _slots(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from signaling.booking import booking
    from signaling.booking.booking import BookingRules
    from signaling.cli.serve import settings_from_args
    from signaling.db import utcnow
    from signaling.directory import directory
    from signaling.flow.flow_common import FlowError

    settings = settings_from_args(args)
    rules = BookingRules(
        settings.booking_slot_minutes,
        settings.booking_min_lead_minutes,
        settings.booking_days_ahead,
    )

    async def work(session: AsyncSession) -> int:
        try:
            office = await directory.find_office(session, args.office)
            authority = await booking.find_authority(session, args.authority)
            now = utcnow()
            slots = await booking.slots_for(
                session,
                office,
                authority,
                args.language,
                now,
                now + timedelta(days=args.days),
                now,
                rules,
            )
        except FlowError as exc:
            return _fail_flow(exc)
        items: list[dict[str, Any]] = [booking.slot_view(s) for s in slots]
        if args.json:
            print(json.dumps(items))
        elif not items:
            print("no free slots")
        for item in [] if args.json else items:
            print(item["local"])
        return 0

    return run_with_session(args, work)


def register_admin(admin: Any) -> None:
    actions = resource_parser(
        admin, "availability", "when experts take booked appointments (weekly hours)"
    )
    p = leaf_parser(actions, "set", "replace an expert's weekly availability for an authority")
    p.add_argument("--user", required=True, help="the expert's id or username")
    p.add_argument("--authority", required=True, help="authority code, e.g. kela")
    p.add_argument(
        "--weekly", action="append", help='"mon-thu 09:00-12:00" (repeatable; ma-to also)'
    )
    p.set_defaults(func=_availability_set)
    p = leaf_parser(actions, "show", "show the experts' availability")
    p.add_argument("--user", help="one expert (id or username)")
    p.set_defaults(func=_availability_show)
    p = leaf_parser(actions, "clear", "the expert takes no bookings of the authority")
    p.add_argument("--user", required=True)
    p.add_argument("--authority", required=True)
    p.set_defaults(func=_availability_clear)

    actions = resource_parser(admin, "booking", "booking: slot lengths, free slots")
    p = leaf_parser(actions, "slot-length", "an authority's slot length")
    p.add_argument("--authority", required=True)
    p.add_argument("--minutes", type=int, help="5 to 480")
    p.add_argument("--default", action="store_true", help="back to booking_slot_minutes")
    p.set_defaults(func=_slot_length)
    p = leaf_parser(actions, "slots", "the free slots of an authority at an office")
    p.add_argument("--office", required=True, help="office id or exact name")
    p.add_argument("--authority", required=True)
    p.add_argument("--language", default="fin", help="ISO 639-3, default fin")
    p.add_argument("--days", type=int, default=7, help="how many days ahead (default 7)")
    p.set_defaults(func=_slots)
