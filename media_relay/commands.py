"""`etapalvelu relay` (a relay node: media_relay/node_command.py) and `etapalvelu bench relay`
(media_relay/bench.py)."""

from __future__ import annotations

import argparse
from typing import Any


def register(root: Any, bench: Any) -> None:
    register_node(root)
    parser = bench.add_parser(
        "relay",
        help="media relay: added latency and CPU per packet of the shipped relay service vs "
        "peer-to-peer, and vs Janus (--compare janus)",
        description="Runs `etapalvelu relay` (the shipped service) as a subprocess with one "
        "browser-like publisher (paced VP8 + audio) and N event-driven subscribers in separate "
        "processes; prints the figures, the direct-path baseline, and JSON on the last line.",
    )
    parser.add_argument("--subscribers", type=int, default=5, help="subscribers (default 5)")
    parser.add_argument(
        "--sweep", action="store_true", help="run N = 1, 5 and 10 subscribers in one go"
    )
    parser.add_argument(
        "--compare",
        action="append",
        choices=["janus", "naive"],
        default=[],
        help="also measure Debian's Janus videoroom (janus) or aiortc's re-encoding MediaRelay "
        "(naive) under the same load, runs interleaved; repeatable",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=None,
        help="rounds of interleaved runs per N (default 2 with --compare janus, else 1)",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds (10)")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="give the relay the last CPU to itself and the load generator the others "
        "(default: unpinned, the kernel places every process)",
    )
    parser.add_argument("--no-pin", action="store_true", help=argparse.SUPPRESS)  # old default
    parser.add_argument(
        "--no-baseline", action="store_true", help=argparse.SUPPRESS
    )  # the naive baseline is now opt-in: --compare naive
    parser.add_argument(
        "--pure-python",
        action="store_true",
        help="run the relay's Python fast path instead of the C one "
        "(as ETAPALVELU_RELAY_PURE_PYTHON=1 does)",
    )
    parser.add_argument(
        "--no-transport-cc",
        action="store_true",
        help="the publisher does not number its packets (transport-wide-cc) even when the "
        "relay offers it (default: it does, as Chromium)",
    )
    parser.add_argument(
        "--relay-transport-cc",
        action="store_true",
        help="run the relay service with --transport-cc explicitly (it is its deployed "
        "default: on)",
    )
    # concurrent 2-party calls and first media: media_relay/bench_calls.py
    parser.add_argument(
        "--calls",
        help="N concurrent 2-party calls (audio + ~800 kbit/s VP8 each side) through one relay "
        "process; 'knee' searches for the most calls with loss < 0.1 %% and p99 < 5 ms",
    )
    parser.add_argument(
        "--find-knee", action="store_true", help="with --calls: search for the knee (as 'knee')"
    )
    parser.add_argument(
        "--first-media",
        type=int,
        default=None,
        help="new subscribers whose first media is timed (default 20 with --calls; 0 skips); "
        "alone: only this",
    )
    parser.add_argument(
        "--soak", type=float, default=0.0, help="calls coming and going for SECONDS (default off)"
    )
    parser.add_argument(
        "--calls-seconds", type=float, default=5.0, help="measured seconds per calls step (5)"
    )
    parser.add_argument(
        "--client-processes", type=int, default=3, help="load generator processes (3)"
    )
    parser.add_argument(
        "--calls-in-process",
        action="store_true",
        help="with --calls: the relay as LocalRelay in a forked process instead of the "
        "`etapalvelu relay` service",
    )
    parser.set_defaults(func=_bench_relay)


def _bench_relay(args: argparse.Namespace) -> int:
    from media_relay import bench

    if args.calls is not None or args.find_knee or args.first_media or args.soak:
        from media_relay import bench_calls

        return bench_calls.main_from_args(args)

    if args.subscribers < 1 or args.seconds <= 0:
        print("--subscribers must be at least 1 and --seconds positive")
        return 2
    if args.runs is not None and args.runs < 1:
        print("--runs must be at least 1")
        return 2
    if args.pin and args.no_pin:
        print("--pin and --no-pin contradict each other")
        return 2
    return bench.main(
        args.subscribers,
        args.seconds,
        compare=list(dict.fromkeys(args.compare)),
        sweep=args.sweep,
        runs=args.runs,
        pin_cpus=args.pin,
        pure_python=args.pure_python,
        transport_cc=not args.no_transport_cc,
        service_transport_cc=True if args.relay_transport_cc else None,
    )


def register_node(root: Any) -> None:
    parser = root.add_parser(
        "relay",
        help="run media relay nodes that signaling processes place calls on",
        description="Runs the media relay as a node of its own (uvloop): a WebSocket control "
        "API at /control for signaling processes (Bearer secret), /healthz and /metrics, "
        "registered in Redis with a heartbeat. Prints `relay node <id> control <url>` once "
        "it listens. --drain/--undrain NODE_ID only set a node's drain flag and exit.",
    )
    parser.add_argument("--node-id", help="this node's id (default <hostname>-<pid>)")
    parser.add_argument(
        "--control-host", default="127.0.0.1", help="control API bind address (127.0.0.1)"
    )
    parser.add_argument(
        "--control-port", type=int, default=0, help="control API port (0 = pick a free one)"
    )
    parser.add_argument(
        "--advertise-url",
        help="control URL written to the registry (default ws://<control-host>:<port>/control; "
        "e.g. wss://relay-1.example.fi/control behind a TLS proxy)",
    )
    parser.add_argument(
        "--secret-file",
        help="file holding the control secret (else the ETAPALVELU_RELAY_SECRET environment "
        "variable); required",
    )
    parser.add_argument(
        "--metrics-token-file",
        help="Bearer token for /metrics (else ETAPALVELU_RELAY_METRICS_TOKEN; with neither, "
        "/metrics answers loopback clients only)",
    )
    parser.add_argument(
        "--listen-address", default="0.0.0.0", help="media (UDP) bind address (0.0.0.0)"
    )
    parser.add_argument(
        "--ice-address",
        action="append",
        metavar="ADDRESS",
        help="ICE host candidate address to announce (repeatable; default: the listen address, "
        "or every host address for a wildcard)",
    )
    parser.add_argument("--port-min", type=int, default=0, help="lowest media UDP port (0 = any)")
    parser.add_argument("--port-max", type=int, default=0, help="highest media UDP port")
    parser.add_argument("--redis-url", help="register in this Redis (redis://host:6379/0)")
    parser.add_argument(
        "--redis-prefix", default="etapalvelu", help="registry key prefix (etapalvelu)"
    )
    parser.add_argument("--site", help="site/region label used by placement")
    parser.add_argument(
        "--capacity", type=int, default=600, help="participants this node takes (600)"
    )
    parser.add_argument(
        "--heartbeat", type=float, default=1.0, help="registry heartbeat seconds (1.0)"
    )
    parser.add_argument("--ttl", type=float, default=3.0, help="registry record TTL seconds (3.0)")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="node processes to start, one per core (ids <id>-<i>, control ports base+i, "
        "port range split evenly)",
    )
    parser.add_argument(
        "--transport-cc",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="offer transport-wide congestion control feedback to video publishers (on, as serve)",
    )
    parser.add_argument("--log-level", default="info", help="debug, info, warning (info)")
    drain = parser.add_mutually_exclusive_group()
    drain.add_argument(
        "--drain", metavar="NODE_ID", help="set NODE_ID's drain flag in Redis and exit"
    )
    drain.add_argument(
        "--undrain", metavar="NODE_ID", help="clear NODE_ID's drain flag in Redis and exit"
    )
    parser.set_defaults(func=_relay_node)


def _relay_node(args: argparse.Namespace) -> int:
    from media_relay import node_command

    return node_command.main(args)
