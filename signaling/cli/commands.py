"""`etapalvelu serve`, `etapalvelu admin …` and `etapalvelu bench signaling`.

The handlers live in `signaling.cli.serve`, `signaling.cli.admin_cli` and `signaling.cli.bench`,
imported
only when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    """Where the data is: shared by `serve` and every `admin` command."""
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML settings file")
    parser.add_argument("--data-dir", type=Path, help="data folder (default ./data)")
    parser.add_argument(
        "--database-url",
        help="SQLAlchemy URL; default SQLite in the data folder, e.g. "
        "postgresql://user@127.0.0.1:5432/etapalvelu",
    )


def register(root: Any, bench: Any) -> None:
    serve = root.add_parser(
        "serve",
        help="run the whole service (signaling, consoles, in-process relay)",
        description="Run the whole service on one machine. Settings come from defaults < "
        "--config FILE < ETAPALVELU_* environment < these flags.",
    )
    add_settings_options(serve)
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 8080; 0 = any free)")
    serve.add_argument("--tls-cert", type=Path, metavar="PEM", help="TLS certificate chain")
    serve.add_argument("--tls-key", type=Path, metavar="PEM", help="TLS private key")
    serve.add_argument("--redis-url", help="share socket.io state via Redis, e.g. redis://…")
    serve.add_argument(
        "--ice-address",
        action="append",
        dest="ice_addresses",
        metavar="IP",
        help="address the relay announces as ICE host candidate (repeatable)",
    )
    serve.add_argument(
        "--relay-mode",
        choices=["local", "nodes"],
        help="local: an in-process relay (default); nodes: place each call on a relay node "
        "(`etapalvelu relay`) registered in Redis (needs --redis-url and a relay secret)",
    )
    serve.add_argument(
        "--relay-secret-file",
        type=Path,
        metavar="FILE",
        help="the relay nodes' shared control secret (or ETAPALVELU_RELAY_SECRET)",
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="seed a demo office, kiosk and people with FIXED printed credentials",
    )
    serve.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    serve.set_defaults(func=_serve)

    admin = root.add_parser(
        "admin",
        help="manage offices, kiosk endpoints, users and authorities",
        description="Manage the directory in the service's database (the same --data-dir / "
        "--database-url / --config as `serve`).",
    )
    admin_sub = admin.add_subparsers(dest="admin_resource", metavar="RESOURCE")
    admin.set_defaults(func=lambda _args: _usage(admin))
    from signaling.cli.admin_cli import register_admin

    register_admin(admin_sub)

    bench_signaling = bench.add_parser(
        "signaling",
        help="socket.io event round trip with N authenticated clients",
        description="Starts the server as a subprocess, connects N authenticated clients "
        "from worker processes, measures event round trips and server memory. Prints the "
        "1-client baseline first; the last line is JSON.",
    )
    bench_signaling.add_argument("--clients", type=int, default=200)
    bench_signaling.add_argument("--seconds", type=float, default=10.0)
    bench_signaling.add_argument(
        "--workers", type=int, default=4, help="client processes (default 4)"
    )
    bench_signaling.add_argument(
        "--interval",
        type=float,
        default=2.0,
        help="seconds between one client's events (default 2: 1000 events/s at 2000 clients)",
    )
    bench_signaling.add_argument(
        "--processes",
        type=int,
        default=1,
        help="signaling processes (default 1); more than 1 runs them on PostgreSQL + Redis "
        "behind a real HAProxy and kills one during the run (signaling/cli/bench_cluster.py)",
    )
    bench_signaling.add_argument(
        "--database-url",
        help="with --processes > 1: a PostgreSQL URL to use (default: a scratch database "
        "created on 127.0.0.1:5432 and dropped at the end)",
    )
    bench_signaling.set_defaults(func=_bench)

    from signaling.cli.relay_failover_bench import register as register_failover_bench

    register_failover_bench(bench)

    from signaling.cli.cluster_config import register as register_cluster_config

    register_cluster_config(root, bench)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _serve(args: argparse.Namespace) -> int:
    from signaling.cli.serve import run_serve

    return run_serve(args)


def _bench(args: argparse.Namespace) -> int:
    from signaling.cli.bench import run_bench

    return run_bench(args)
