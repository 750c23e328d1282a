"""`etapalvelu admin log verify|export|checkpoint|export-checkpoints`: the service log (apudiaari).

    etapalvelu admin log verify                 # exit 0: chain, signatures and checkpoints hold
    etapalvelu admin log verify --checkpoints authority-copy.jsonl --public-key KEY
    etapalvelu admin log verify --export apudiaari.json --checkpoints … --public-key …
    etapalvelu admin log export --format csv --output apudiaari.csv [--from 2026-01 --to 2026-12]
    etapalvelu admin log export --format json   # to standard output
    etapalvelu admin log checkpoint             # sign the head now, append it, print it
    etapalvelu admin log export-checkpoints [--after-seq N] [--output FILE] [--json]

`verify` reports the first broken entry (sequence number and what is wrong) and exits 1: a
broken chain or signature, or a disagreement with a checkpoint (signature, log id, entries
removed from the end, an emptied log, a rewritten and re-chained entry); see
signaling/records/log_checkpoints.py.
Exports carry each entry's record, signature, signer public key, previous hash and hash, so
that an authority can verify them without this server (docs/document-protocol.md §6).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from signaling.csv_safe import SafeDictWriter

MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

CSV_COLUMNS = [
    "seq",
    "kind",
    "filed_at",
    "month",
    "call_id",
    "authority_code",
    "office_id",
    "office_name",
    "endpoint_id",
    "expert_id",
    "expert_name",
    "interpreters",
    "language",
    "visit",
    "service_type",
    "outcome",
    "queued_at",
    "started_at",
    "ended_at",
    "wait_seconds",
    "duration_seconds",
    "documents",
    "sha256",
    "size",
    "type",
    "sender",
    "receiver",
    "received_at",
    "verdict",
    "record",
    "signature",
    "signer_public_key",
    "prev_hash",
    "hash",
]


def month_arg(value: str) -> str:
    if not MONTH.match(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a month like 2026-11")
    return value


def csv_row(entry: dict[str, Any]) -> dict[str, Any]:
    """One CSV row: the entry's chain fields, its record as canonical JSON, and the record's
    fields spread out for spreadsheets."""
    from signaling.wire.canonical import canonical_json

    record = entry["record"]
    row: dict[str, Any] = {c: "" for c in CSV_COLUMNS}
    for key in ("seq", "kind", "filed_at", "signature", "signer_public_key", "prev_hash", "hash"):
        row[key] = "" if entry.get(key) is None else entry[key]
    row["month"] = entry.get("month", "")
    for key in CSV_COLUMNS:
        value = record.get(key)
        if row[key] == "" and value is not None and not isinstance(value, list | dict):
            row[key] = value
    if entry["kind"] == "service":
        row["visit"] = record.get("kind", "")
        row["interpreters"] = ";".join(
            f"{i.get('name', '')} ({i.get('language', '')})" for i in record.get("interpreters", [])
        )
        row["documents"] = len(record.get("documents", []))
    row["record"] = canonical_json(record).decode("utf-8")
    return row


def write_csv(entries: Iterable[dict[str, Any]], out: io.TextIOBase | Any) -> int:
    # Names typed by people may start with = + - @: a spreadsheet must not run them. The
    # signature and key columns are base64url (may start with "-") and must stay exact.
    writer = SafeDictWriter(
        out, CSV_COLUMNS, lineterminator="\n", verbatim=("signature", "signer_public_key")
    )
    writer.writeheader()
    count = 0
    for entry in entries:
        writer.writerow(csv_row(entry))
        count += 1
    return count


async def load_entries(
    session: AsyncSession, start: str | None = None, end: str | None = None
) -> list[dict[str, Any]]:
    from signaling.records.service_log import entry_view
    from signaling.store.flow_models import ServiceLogEntry

    query = select(ServiceLogEntry).order_by(ServiceLogEntry.seq)
    if start:
        query = query.where(ServiceLogEntry.month >= start)
    if end:
        query = query.where(ServiceLogEntry.month <= end)
    entries = []
    for row in (await session.execute(query)).scalars():
        view = entry_view(row)
        # Exports name the signed object `record` (docs/document-protocol.md §6).
        view = {"record": view.pop("body"), **view, "month": row.month}
        entries.append(view)
    return entries


def _print_report(args: argparse.Namespace, report: Any) -> int:
    if args.json:
        print(json.dumps(report.as_dict()))
        return 0 if report.ok else 1
    if report.ok:
        print(f"service log OK: {report.entries} entries, head hash {report.head_hash}")
        if report.checkpoint is not None:
            cp = report.checkpoint
            print(
                f"checkpoints OK: {report.checkpoints_checked} checked; the latest "
                f"({cp['at']}) anchors entry {cp['seq']}"
                + (
                    f"; {report.unanchored} newer entries are not yet anchored"
                    if report.unanchored
                    else ""
                )
            )
    elif report.broken_seq is None:
        print(f"service log BROKEN: {report.problem}")
    else:
        print(
            f"service log BROKEN at entry {report.broken_seq}: {report.problem} "
            f"({report.entries} entries verify as a chain)"
        )
    for note in report.notes:
        print(f"note: {note}")
    return 0 if report.ok else 1


def _checkpoint_source(args: argparse.Namespace) -> Any:
    from signaling.cli.serve import settings_from_args
    from signaling.records.log_checkpoints import CheckpointSource

    return CheckpointSource.from_settings(
        settings_from_args(args), args.checkpoints, args.public_key or ()
    )


def _verify(args: argparse.Namespace) -> int:
    from signaling.cli.admin_cli import run_with_session
    from signaling.cli.serve import fail
    from signaling.config import ConfigError
    from signaling.records.log_checkpoints import CheckpointError, verify_export, verify_log

    try:
        source = _checkpoint_source(args)
    except (ConfigError, CheckpointError) as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"cannot read a key: {exc}")
    if args.export is not None:
        try:
            entries = json.loads(args.export.read_text(encoding="utf-8"))
            if not isinstance(entries, list):
                raise CheckpointError("the export is not a JSON list (use --format json)")
            report = asyncio.run(verify_export(entries, source))
        except (OSError, ValueError) as exc:
            return fail(f"cannot verify {args.export}: {exc}")
        return _print_report(args, report)

    async def work(session: AsyncSession) -> int:
        return _print_report(args, await verify_log(session, source))

    return run_with_session(args, work)


def _checkpoint(args: argparse.Namespace) -> int:
    from signaling.cli.admin_cli import run_with_session
    from signaling.cli.serve import fail, settings_from_args
    from signaling.config import ConfigError
    from signaling.records.log_checkpoints import LogCheckpointer

    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        return fail(str(exc))

    async def work(session: AsyncSession) -> int:
        try:
            checkpointer = LogCheckpointer.from_settings(settings, None)
            line = await checkpointer.checkpoint(force=True, session=session)
        except ConfigError as exc:
            return fail(str(exc))
        except OSError as exc:
            return fail(f"cannot write {settings.checkpoint_file_path}: {exc.strerror or exc}")
        assert line is not None
        if args.json:
            print(json.dumps(line))
        else:
            body = line["checkpoint"]
            print(
                f"checkpoint appended to {checkpointer.path}: entry {body['seq']}, "
                f"{body['entries']} entries, head hash {body['head_hash']}, at {body['at']}"
            )
            print(f"server public key: {line['public_key']}")
        return 0

    return run_with_session(args, work)


def _export_checkpoints(args: argparse.Namespace) -> int:
    from signaling.cli.serve import fail, settings_from_args
    from signaling.config import ConfigError
    from signaling.records.log_checkpoints import (
        CheckpointError,
        load_key,
        public_key_pem,
        read_checkpoint_lines,
    )
    from signaling.records.record_signing import public_key_b64u
    from signaling.wire.canonical import canonical_json

    try:
        settings = settings_from_args(args)
        public_key = public_key_b64u(load_key(settings.checkpoint_key_path))
    except ConfigError as exc:
        return fail(str(exc))
    except FileNotFoundError:
        return fail(
            f"no log checkpoint key at {settings.checkpoint_key_path}: the server has not "
            "started yet (or give --config / --data-dir)"
        )
    except (OSError, CheckpointError) as exc:
        return fail(f"cannot read the log checkpoint key: {exc}")
    try:
        lines = read_checkpoint_lines(settings.checkpoint_file_path, args.after_seq)
    except (OSError, UnicodeDecodeError) as exc:
        return fail(f"cannot read {settings.checkpoint_file_path}: {exc}")
    if args.json:
        text = json.dumps(
            {
                "log_id": settings.log_id,
                "public_key": public_key,
                "public_key_pem": public_key_pem(public_key),
                "checkpoints": lines,
            },
            indent=1,
        )
        text += "\n"
    else:
        text = "".join(canonical_json(line).decode("utf-8") + "\n" for line in lines)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    print(
        f"{len(lines)} checkpoints of log {settings.log_id!r}; server public key "
        f"(Ed25519, base64url): {public_key}",
        file=sys.stderr,
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    from signaling.cli.admin_cli import run_with_session

    loaded: list[dict[str, Any]] = []

    async def work(session: AsyncSession) -> int:
        loaded.extend(await load_entries(session, args.start, args.end))
        return 0

    status = run_with_session(args, work)
    if status != 0:
        return status
    out = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout
    try:
        if args.format == "json":
            json.dump(loaded, out, ensure_ascii=False, indent=1)
            out.write("\n")
        else:
            write_csv(loaded, out)
    finally:
        if out is not sys.stdout:
            out.close()
    if args.output:
        print(f"exported {len(loaded)} entries to {args.output}", file=sys.stderr)
    return 0


def register_admin(admin: Any) -> None:
    from signaling.cli.admin_cli import leaf_parser

    parser = admin.add_parser("log", help="the service log (apudiaari): verify and export")
    actions = parser.add_subparsers(dest="log_action", metavar="ACTION")
    parser.set_defaults(func=lambda _args: (parser.print_help(), 2)[1])

    verify = leaf_parser(
        actions, "verify", "check the hash chain, the signatures and the signed checkpoints"
    )
    verify.add_argument(
        "--checkpoints",
        type=Path,
        metavar="FILE",
        help="check against these checkpoints (an authority's own copy) instead of the "
        "server's checkpoint file",
    )
    verify.add_argument(
        "--public-key",
        action="append",
        metavar="KEY",
        help="trust checkpoints signed by this key (base64url, or a file with it or a PEM "
        "public key; repeatable) instead of the server's key file",
    )
    verify.add_argument(
        "--export",
        type=Path,
        metavar="FILE",
        help="verify this whole-log JSON export (`export --format json`) instead of the database",
    )
    verify.set_defaults(func=_verify)

    checkpoint = leaf_parser(
        actions, "checkpoint", "sign the log's head with the server key now and append it"
    )
    checkpoint.set_defaults(func=_checkpoint)

    export_checkpoints = leaf_parser(
        actions,
        "export-checkpoints",
        "print the signed checkpoints (JSON lines) for an authority to keep",
    )
    export_checkpoints.add_argument(
        "--after-seq",
        type=int,
        default=-1,
        metavar="N",
        help="only checkpoints of entries after N (what is new since the last fetch)",
    )
    export_checkpoints.add_argument("--output", help="file to write (default: standard output)")
    export_checkpoints.set_defaults(func=_export_checkpoints)

    export = leaf_parser(actions, "export", "export entries with hashes and signatures")
    export.add_argument("--format", choices=["csv", "json"], default="csv")
    export.add_argument("--output", help="file to write (default: standard output)")
    export.add_argument("--from", dest="start", type=month_arg, help="first month, e.g. 2026-01")
    export.add_argument("--to", dest="end", type=month_arg, help="last month, e.g. 2026-12")
    export.set_defaults(func=_export)
