"""`etapalvelu admin log verify|export`: check and export the service log (apudiaari).

    etapalvelu admin log verify                 # exit 0: chain and signatures hold
    etapalvelu admin log export --format csv --output apudiaari.csv [--from 2026-01 --to 2026-12]
    etapalvelu admin log export --format json   # to standard output

`verify` reports the first broken entry (sequence number and what is wrong) and exits 1.
Exports carry each entry's record, signature, signer public key, previous hash and hash, so
that an authority can verify them without this server (docs/document-protocol.md §6).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

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
    from signaling.record_signing import canonical_json

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
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for entry in entries:
        writer.writerow(csv_row(entry))
        count += 1
    return count


async def load_entries(
    session: AsyncSession, start: str | None = None, end: str | None = None
) -> list[dict[str, Any]]:
    from signaling.flow_models import ServiceLogEntry
    from signaling.service_log import entry_view

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


def _verify(args: argparse.Namespace) -> int:
    from signaling.admin_cli import run_with_session
    from signaling.service_log import verify_chain

    async def work(session: AsyncSession) -> int:
        report = await verify_chain(session)
        if args.json:
            print(json.dumps(report.as_dict()))
        elif report.ok:
            print(f"service log OK: {report.entries} entries, head hash {report.head_hash}")
        else:
            print(
                f"service log BROKEN at entry {report.broken_seq}: {report.problem} "
                f"({report.entries} entries before it verify)"
            )
        return 0 if report.ok else 1

    return run_with_session(args, work)


def _export(args: argparse.Namespace) -> int:
    from signaling.admin_cli import run_with_session

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
    from signaling.admin_cli import leaf_parser

    parser = admin.add_parser("log", help="the service log (apudiaari): verify and export")
    actions = parser.add_subparsers(dest="log_action", metavar="ACTION")
    parser.set_defaults(func=lambda _args: (parser.print_help(), 2)[1])

    verify = leaf_parser(actions, "verify", "check the hash chain and signatures")
    verify.set_defaults(func=_verify)

    export = leaf_parser(actions, "export", "export entries with hashes and signatures")
    export.add_argument("--format", choices=["csv", "json"], default="csv")
    export.add_argument("--output", help="file to write (default: standard output)")
    export.add_argument("--from", dest="start", type=month_arg, help="first month, e.g. 2026-01")
    export.add_argument("--to", dest="end", type=month_arg, help="last month, e.g. 2026-12")
    export.set_defaults(func=_export)
