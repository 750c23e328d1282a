"""`etapalvelu admin receipt verify CODE`: checks a customer's receipt against the service log.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from signaling.records.receipts import normalize_code, verify_receipt


def _verify_command(args: argparse.Namespace) -> int:
    from signaling.cli.admin_cli import run_with_session
    from signaling.cli.serve import fail, settings_from_args
    from signaling.config import ConfigError
    from signaling.records.log_checkpoints import CheckpointError, CheckpointSource

    try:
        normalize_code(args.code)
        source = CheckpointSource.from_settings(
            settings_from_args(args), args.checkpoints, args.public_key or ()
        )
    except ValueError as exc:  # CheckpointError is one too
        return fail(str(exc))
    except ConfigError as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"cannot read a key: {exc}")

    async def work(session: AsyncSession) -> int:
        try:
            result = await verify_receipt(session, args.code, source)
        except LookupError as exc:
            print(f"receipt NOT FOUND: {exc}")
            return 1
        except CheckpointError as exc:
            return fail(str(exc))
        if args.json:
            print(json.dumps(result))
        else:
            r = result["receipt"]
            verdict = "OK" if result["valid"] else "DOES NOT VERIFY"
            print(
                f"receipt {result['code']} {verdict}: {r['authority_code']} at "
                f"{r['office_name']}, pending since {r['pending_at']}, log entry {r['log_seq']}"
                + (f", service record {r['record_seq']}" if r["record_seq"] else "")
            )
            for check in result["checks"]:
                print(f"  {'ok ' if check['ok'] else 'BAD'} {check['name']}: {check['detail']}")
        return 0 if result["valid"] else 1

    return run_with_session(args, work)

def register_admin(admin: Any) -> None:
    from signaling.cli.admin_cli import leaf_parser

    parser = admin.add_parser("receipt", help="customers' receipts: verify against the log")
    actions = parser.add_subparsers(dest="receipt_action", metavar="ACTION")
    parser.set_defaults(func=lambda _args: (parser.print_help(), 2)[1])
    verify = leaf_parser(
        actions, "verify", "check a receipt code against the service log (exit 1 if it fails)"
    )
    verify.add_argument("code", help="the code on the receipt, e.g. ABCD-EFGH")
    verify.add_argument(
        "--checkpoints",
        metavar="FILE",
        type=Path,
        help="check the log against these checkpoints (an authority's own copy)",
    )
    verify.add_argument(
        "--public-key",
        action="append",
        metavar="KEY",
        help="trust checkpoints signed by this key (repeatable)",
    )
    verify.set_defaults(func=_verify_command)
