"""`etapalvelu bench call-setup`: the expert's "take next" to the first decoded video;
`etapalvelu bench resilience`: calls through network faults, in network namespaces."""

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
    _register_resilience(bench)


def _call_setup(args: argparse.Namespace) -> int:
    from expert_console.call_setup_bench import main

    if args.calls < 1:
        print("--calls must be at least 1")
        return 2
    return main(args.calls, args.chromium)


def _register_resilience(bench: Any) -> None:
    parser: argparse.ArgumentParser = bench.add_parser(
        "resilience",
        help="calls through network faults: loss, jitter, a bottleneck, outages, restarts",
        description="Builds network namespaces (kiosk, expert, service, and a router between "
        "them; 10.213.0.0/16, nothing routed to the host), runs `etapalvelu serve --demo` in "
        "the service's and headless Chromium (fake camera) in the kiosk's and the expert's, "
        "makes a call and applies each case's fault. Prints per case the media gap in both "
        "directions, the frame rate and resolution reached, audio continuity, whether the "
        "call came back by itself and what each person saw. Needs root. Last line: JSON.",
    )
    parser.add_argument(
        "--cases",
        default="",
        help="comma-separated cases (default: all): " + ", ".join(_resilience_cases()),
    )
    parser.add_argument(
        "--seconds", type=float, default=15.0,
        help="how long an impairment (loss, jitter, bottleneck) lasts (default 15)",
    )
    parser.add_argument(
        "--steady", type=float, default=8.0,
        help="seconds of media before the fault (default 8; the bottleneck waits ≥ 25 for "
        "the call to ramp up)",
    )
    parser.add_argument(
        "--recovery", type=float, default=30.0,
        help="seconds the call gets to come back after the fault is lifted (default 30)",
    )
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium executable")
    parser.set_defaults(func=_resilience)


def _resilience_cases() -> list[str]:
    from expert_console.resilience_bench import CASES

    return list(CASES)


def _resilience(args: argparse.Namespace) -> int:
    from expert_console.resilience_bench import Options, main

    known = _resilience_cases()
    names = [n.strip() for n in args.cases.split(",") if n.strip()] or known
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(known)}")
        return 2
    if args.seconds <= 0 or args.steady < 0 or args.recovery <= 0:
        print("--seconds and --recovery must be positive, --steady not negative")
        return 2
    options = Options(
        seconds=args.seconds, steady=args.steady, recovery=args.recovery, chromium=args.chromium
    )
    return main(names, options)
