"""`etapalvelu bench relay`: see media_relay/bench.py."""

from __future__ import annotations

import argparse
from typing import Any


def register(root: Any, bench: Any) -> None:
    parser = bench.add_parser(
        "relay",
        help="media relay: added latency, CPU per packet and saturation vs peer-to-peer "
        "and vs the naive re-encoding relay",
        description="Runs the relay (uvloop) in its own process with one publisher of "
        "pre-encoded VP8 and N subscribers in separate processes; prints the figures, the "
        "baseline, and JSON on the last line.",
    )
    parser.add_argument("--subscribers", type=int, default=5, help="subscribers (default 5)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds (10)")
    parser.add_argument(
        "--saturation-seconds", type=float, default=3.0, help="flood phase seconds (3; 0 skips)"
    )
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the naive MediaRelay baseline"
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="leave CPU placement to the kernel (default: the relay gets the last CPU to "
        "itself, the load generator the others)",
    )
    parser.add_argument(
        "--pure-python",
        action="store_true",
        help="run the relay's Python fast path instead of the C one "
        "(as ETAPALVELU_RELAY_PURE_PYTHON=1 does)",
    )
    parser.add_argument(
        "--no-transport-cc",
        action="store_true",
        help="the publisher does not number its packets (transport-wide-cc), so the relay "
        "records no arrivals and sends no Transport Feedback (default: it does, as Chromium)",
    )
    parser.set_defaults(func=_bench_relay)


def _bench_relay(args: argparse.Namespace) -> int:
    from media_relay import bench

    if args.subscribers < 1 or args.seconds <= 0:
        print("--subscribers must be at least 1 and --seconds positive")
        return 2
    return bench.main(
        args.subscribers,
        args.seconds,
        args.saturation_seconds,
        not args.no_baseline,
        pin_cpus=not args.no_pin,
        pure_python=args.pure_python,
        transport_cc=not args.no_transport_cc,
    )
