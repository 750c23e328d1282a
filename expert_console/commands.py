"""`etapalvelu bench call-setup`: the expert's "take next" to the first decoded video."""

from __future__ import annotations

import argparse
from typing import Any


def register(root: Any, bench: Any) -> None:
    parser: argparse.ArgumentParser = bench.add_parser(
        "call-setup",
        help="time from the expert's 'take next' to the first decoded video in Chromium",
        description="Starts the service on 127.0.0.1 and drives headless Chromium (kiosk and "
        "expert pages, fake camera) through repeated calls; prints p50/p95 of the time from "
        "the 'take next' click to the first decoded remote video frame, and a baseline "
        "(a direct loopback RTCPeerConnection pair in the same browser). Last line: JSON.",
    )
    parser.add_argument("--calls", type=int, default=10, help="measured calls (default 10)")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium executable")
    parser.set_defaults(func=_call_setup)


def _call_setup(args: argparse.Namespace) -> int:
    from expert_console.call_setup_bench import main

    if args.calls < 1:
        print("--calls must be at least 1")
        return 2
    return main(args.calls, args.chromium)
