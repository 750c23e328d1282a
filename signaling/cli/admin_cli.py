"""`etapalvelu admin RESOURCE ACTION`: offices, endpoints, users and authorities.

    etapalvelu admin office add --name "Kirjasto Kallio" --municipality Helsinki
    etapalvelu admin endpoint add --office 1 --name "Kioski 1"     # prints the credential once
    etapalvelu admin user add --username kela1 --display-name "…" --role expert \\
        --authority kela --language fin --password-stdin < password.txt
    etapalvelu admin user list [--json]
    etapalvelu admin user disable 3

Every command takes `--data-dir`, `--database-url` and `--config` like `serve`. A user or
kiosk disabled here is disconnected by the running server within `revocation_check_seconds`.
Other modules add resources through `ADMIN_COMMAND_MODULES` (signaling/server/features.py):
`register_admin(admin_subparsers)`; use `resource_parser(...)`, `leaf_parser(...)` and
`run_with_session(...)`.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from signaling.directory import directory

# Parsers are built for every `etapalvelu` invocation, so the database layers are imported only
# inside the handlers.
SessionWork = Callable[["AsyncSession"], Awaitable[int]]


def leaf_parser(subparsers: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    """A subcommand parser with the settings options (--config, --data-dir, --database-url)."""
    from signaling.cli.commands import add_settings_options

    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help_text)
    add_settings_options(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    return parser


def run_with_session(args: argparse.Namespace, work: SessionWork) -> int:
    """Open the configured database (migrating it), run `work(session)`, commit, return its
    status. Configuration and directory errors print one line and return 2."""
    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    from signaling.cli.serve import fail, settings_from_args
    from signaling.config import ConfigError
    from signaling.directory import directory

    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        return fail(str(exc))
    from signaling.data_dir import set_private_umask

    set_private_umask()  # a database the CLI creates is as private as the server's
    try:
        return asyncio.run(_run(settings.sqlalchemy_url, work))
    except directory.DirectoryError as exc:
        return fail(exc.message)
    except ValidationError as exc:
        parts = [
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        ]
        return fail("; ".join(parts))
    except ValueError as exc:
        return fail(str(exc))
    except (OSError, SQLAlchemyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return fail(f"cannot open the database: {first}")


async def _run(url: str, work: SessionWork) -> int:
    from signaling.db import create_engine, migrate, session_factory

    engine = create_engine(url)
    try:
        await migrate(engine)
        async with session_factory(engine)() as session:
            status = await work(session)
            await session.commit()
            return status
    finally:
        await engine.dispose()


def _print(args: argparse.Namespace, items: list[dict[str, Any]], columns: list[str]) -> None:
    if args.json:
        print(json.dumps(items, ensure_ascii=False))
        return
    widths = {c: max([len(c)] + [len(str(i.get(c, ""))) for i in items]) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for item in items:
        print("  ".join(str(item.get(c, "")).ljust(widths[c]) for c in columns).rstrip())


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise ValueError("give the password with --password-stdin (stdin is not a terminal)")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise ValueError("the passwords differ")
    return first


# --- handlers -----------------------------------------------------------------------------


def _office_add(args: argparse.Namespace) -> int:
    from signaling.directory import directory

    async def work(session: AsyncSession) -> int:
        office = await directory.create_office(
            session,
            directory.OfficeCreate(
                name=args.name, municipality=args.municipality, default_language=args.language
            ),
        )
        _print(args, [directory.office_dict(office)], ["id", "name", "municipality"])
        return 0

    return run_with_session(args, work)


def _office_set_site(args: argparse.Namespace) -> int:
    from signaling.directory import directory

    site = (args.site or "").strip()
    if len(site) > 64:
        raise ValueError("a relay site label has at most 64 characters")

    async def work(session: AsyncSession) -> int:
        office = await directory.find_office(session, args.office)
        office.relay_site = site or None
        await session.commit()
        _print(args, [directory.office_dict(office)], ["id", "name", "relay_site"])
        return 0

    return run_with_session(args, work)


def _office_list(args: argparse.Namespace) -> int:
    from signaling.directory import directory

    async def work(session: AsyncSession) -> int:
        items = [directory.office_dict(o) for o in await directory.list_offices(session)]
        _print(
            args, items, ["id", "name", "municipality", "default_language", "enabled", "relay_site"]
        )
        return 0

    return run_with_session(args, work)


def _endpoint_add(args: argparse.Namespace) -> int:
    from signaling.directory import directory

    async def work(session: AsyncSession) -> int:
        office = await directory.find_office(session, args.office)
        endpoint, credential = await directory.create_endpoint(
            session, directory.EndpointCreate(office_id=office.id, name=args.name)
        )
        item = {**directory.endpoint_dict(endpoint), "credential": credential}
        if args.json:
            print(json.dumps(item, ensure_ascii=False))
        else:
            print(f"endpoint {endpoint.id} ({endpoint.name}) of office {office.name}")
            print(f"credential: {credential}")
            print("The credential is shown only now; only its hash is stored.")
            print(f"Kiosk URL: <base>/kiosk#endpoint={endpoint.id}&credential={credential}")
        return 0

    return run_with_session(args, work)


def _endpoint_list(args: argparse.Namespace) -> int:
    from signaling.directory import directory

    async def work(session: AsyncSession) -> int:
        office_id = None
        if args.office is not None:
            office_id = (await directory.find_office(session, args.office)).id
        items = [
            directory.endpoint_dict(e) for e in await directory.list_endpoints(session, office_id)
        ]
        _print(args, items, ["id", "office_id", "name", "enabled", "presence"])
        return 0

    return run_with_session(args, work)


def _endpoint_credential(args: argparse.Namespace) -> int:
    from signaling.directory import directory

    async def work(session: AsyncSession) -> int:
        endpoint, credential = await directory.reset_endpoint_credential(session, args.id)
        if args.json:
            print(json.dumps({**directory.endpoint_dict(endpoint), "credential": credential}))
        else:
            print(f"new credential of endpoint {endpoint.id}: {credential}")
        return 0

    return run_with_session(args, work)


def _user_add(args: argparse.Namespace) -> int:
    from signaling.cli.serve import fail
    from signaling.directory import directory

    try:
        password = _read_password(args)
    except (ValueError, EOFError) as exc:
        return fail(str(exc) or "no password given")

    async def work(session: AsyncSession) -> int:
        office_id = None
        if args.office is not None:
            office_id = (await directory.find_office(session, args.office)).id
        data = directory.UserCreate(
            username=args.username,
            display_name=args.display_name,
            role=args.role,
            password=password,
            office_id=office_id,
            authorities=args.authority or [],
            languages=args.language or [],
            municipality=args.municipality,
        )
        user = await directory.create_user(session, data)
        _print(args, [directory.user_dict(user)], ["id", "username", "role"])
        return 0

    return run_with_session(args, work)


def _user_list(args: argparse.Namespace) -> int:
    from signaling.directory import directory

    async def work(session: AsyncSession) -> int:
        items = [directory.user_dict(u) for u in await directory.list_users(session, args.role)]
        if not args.json:
            for item in items:
                item["authorities"] = ",".join(item["authorities"])
                item["languages"] = ",".join(item["languages"])
        _print(
            args,
            items,
            [
                "id",
                "username",
                "display_name",
                "role",
                "enabled",
                "office_id",
                "authorities",
                "languages",
                "presence",
            ],
        )
        return 0

    return run_with_session(args, work)


def _authority_add(args: argparse.Namespace) -> int:
    from signaling.directory import directory

    async def work(session: AsyncSession) -> int:
        authority = await directory.create_authority(
            session,
            directory.AuthorityCreate(
                code=args.code, name_fi=args.name_fi, name_sv=args.name_sv, name_en=args.name_en
            ),
        )
        _print(args, [directory.authority_dict(authority)], ["id", "code", "name_fi"])
        return 0

    return run_with_session(args, work)


def _authority_list(args: argparse.Namespace) -> int:
    from signaling.directory import directory

    async def work(session: AsyncSession) -> int:
        items = [directory.authority_dict(a) for a in await directory.list_authorities(session)]
        _print(args, items, ["id", "code", "name_fi", "name_sv", "name_en", "enabled"])
        return 0

    return run_with_session(args, work)


def _set_enabled(kind: directory.EnablableKind, enabled: bool) -> Callable[[Any], int]:
    def handler(args: argparse.Namespace) -> int:
        from signaling.directory import directory

        async def work(session: AsyncSession) -> int:
            await directory.set_enabled(session, kind, args.id, enabled)
            summary: dict[str, int] = {}
            if kind == "office" and not enabled:
                # The running servers disconnect its kiosks and clerks by their sweep.
                from signaling.flow.office_closure import close_office_records

                summary = (await close_office_records(session, args.id)).summary()
            state = "enabled" if enabled else "disabled"
            if args.json:
                print(json.dumps({"kind": kind, "id": args.id, "enabled": enabled, **summary}))
            else:
                details = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in summary.items())
                print(f"{kind} {args.id} {state}" + (f" ({details})" if details else ""))
            return 0

        return run_with_session(args, work)

    return handler


# --- parsers ------------------------------------------------------------------------------


def resource_parser(subparsers: Any, name: str, help_text: str) -> Any:
    """`etapalvelu admin NAME ACTION`: the parser of NAME (alone, it prints its help and
    returns 2); its actions are added with `leaf_parser` on the subparsers returned."""
    parser = subparsers.add_parser(name, help=help_text)
    actions = parser.add_subparsers(dest=f"{name}_action", metavar="ACTION")
    parser.set_defaults(func=lambda _args: _usage(parser))
    return actions


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _enable_disable(actions: Any, kind: directory.EnablableKind) -> None:
    for action, enabled in (("disable", False), ("enable", True)):
        parser = leaf_parser(actions, action, f"{action} a {kind} by id")
        parser.add_argument("id", type=int)
        parser.set_defaults(func=_set_enabled(kind, enabled))


def register_admin(admin: Any) -> None:
    """Add the directory resources, then those of ADMIN_COMMAND_MODULES."""
    offices = resource_parser(admin, "office", "one-stop service offices")
    p = leaf_parser(offices, "add", "add an office")
    p.add_argument("--name", required=True)
    p.add_argument("--municipality", required=True)
    p.add_argument("--language", default="fi", help="kiosk default UI language fi/sv/en")
    p.set_defaults(func=_office_add)
    leaf_parser(offices, "list", "list offices").set_defaults(func=_office_list)
    p = leaf_parser(
        offices,
        "set-site",
        "place this office's calls on relay nodes with this site label (empty: any node)",
    )
    p.add_argument("office", help="office id or exact name")
    p.add_argument("site", nargs="?", default="", help="site label, e.g. 'oulu' (empty clears)")
    p.set_defaults(func=_office_set_site)
    _enable_disable(offices, "office")

    endpoints = resource_parser(admin, "endpoint", "kiosk endpoints of offices")
    p = leaf_parser(endpoints, "add", "enrol a kiosk; prints its credential once")
    p.add_argument("--office", required=True, help="office id or exact name")
    p.add_argument("--name", required=True)
    p.set_defaults(func=_endpoint_add)
    p = leaf_parser(endpoints, "list", "list kiosks")
    p.add_argument("--office", help="only this office (id or name)")
    p.set_defaults(func=_endpoint_list)
    p = leaf_parser(endpoints, "reset-credential", "issue a new credential (prints it once)")
    p.add_argument("id", type=int)
    p.set_defaults(func=_endpoint_credential)
    _enable_disable(endpoints, "endpoint")

    users = resource_parser(admin, "user", "experts, interpreters, clerks and administrators")
    p = leaf_parser(users, "add", "add a person")
    p.add_argument("--username", required=True)
    p.add_argument("--display-name", required=True)
    p.add_argument("--role", required=True, choices=["expert", "interpreter", "clerk", "admin"])
    p.add_argument("--office", help="office id or name (required for clerks)")
    p.add_argument("--authority", action="append", help="authority code (experts; repeatable)")
    p.add_argument("--language", action="append", help="ISO 639-3 code, e.g. fin fse (repeatable)")
    p.add_argument(
        "--municipality", help="experts of kunta/rakennusvalvonta: the municipality they serve"
    )
    p.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    p.set_defaults(func=_user_add)
    p = leaf_parser(users, "list", "list people")
    p.add_argument("--role", choices=["expert", "interpreter", "clerk", "admin"])
    p.set_defaults(func=_user_list)
    _enable_disable(users, "user")

    authorities = resource_parser(admin, "authority", "authorities whose experts serve remotely")
    p = leaf_parser(authorities, "add", "add an authority")
    p.add_argument("--code", required=True)
    p.add_argument("--name-fi", required=True)
    p.add_argument("--name-sv", required=True)
    p.add_argument("--name-en", required=True)
    p.set_defaults(func=_authority_add)
    leaf_parser(authorities, "list", "list authorities").set_defaults(func=_authority_list)
    _enable_disable(authorities, "authority")

    from signaling.server.features import ADMIN_COMMAND_MODULES, import_optional

    for name in ADMIN_COMMAND_MODULES:
        module = import_optional(name)
        if module is not None and hasattr(module, "register_admin"):
            module.register_admin(admin)
