"""`etapalvelu relay`: run relay nodes (media_relay/node.py), or set a node's drain flag.

`--processes N` starts N node processes (one per core) and waits for them, forwarding
SIGTERM/SIGINT: node ids `<id>-<i>`, control ports `base + i` when a base port is given (else
each picks one), the UDP port range split evenly. The control secret reaches them through
their environment, never their command line.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

SECRET_ENV = "ETAPALVELU_RELAY_SECRET"
METRICS_TOKEN_ENV = "ETAPALVELU_RELAY_METRICS_TOKEN"
MIN_SECRET_CHARS = 16


class CommandError(Exception):
    """A bad option: printed, exit status 2, nothing started."""


def default_node_id() -> str:
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()).strip("-._") or "relay"
    return f"{host[:48]}-{os.getpid()}"


def read_secret(args: argparse.Namespace) -> str:
    if args.secret_file:
        try:
            secret = Path(args.secret_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CommandError(f"cannot read --secret-file {args.secret_file}: {exc}") from None
        where = f"--secret-file {args.secret_file}"
    else:
        secret = os.environ.get(SECRET_ENV, "").strip()
        where = SECRET_ENV
    if not secret:
        raise CommandError(
            f"a relay node needs a control secret: give --secret-file PATH or set {SECRET_ENV} "
            "(the same secret the signaling processes use)"
        )
    if len(secret) < MIN_SECRET_CHARS or any(ch.isspace() for ch in secret):
        raise CommandError(
            f"the control secret from {where} must be at least {MIN_SECRET_CHARS} characters "
            "without spaces (e.g. `openssl rand -hex 32`)"
        )
    return secret


def read_metrics_token(args: argparse.Namespace) -> str | None:
    if args.metrics_token_file:
        try:
            token = Path(args.metrics_token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CommandError(f"cannot read --metrics-token-file: {exc}") from None
        return token or None
    return os.environ.get(METRICS_TOKEN_ENV, "").strip() or None


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.drain or args.undrain:
            return _set_drain(args)
        check(args)
        secret = read_secret(args)
        if args.processes > 1:
            return _supervise(args, secret)
        return _run_one(args, secret)
    except CommandError as exc:
        print(f"etapalvelu relay: {exc}", file=sys.stderr, flush=True)
        return 2


def check(args: argparse.Namespace) -> None:
    from media_relay.registry import check_node_id

    if args.node_id is not None:
        try:
            check_node_id(args.node_id)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    if args.processes < 1:
        raise CommandError("--processes must be at least 1")
    if not 0 <= args.control_port <= 65535:
        raise CommandError("--control-port must be 0..65535")
    if (args.port_min == 0) != (args.port_max == 0) or args.port_min > args.port_max:
        raise CommandError("--port-min and --port-max go together, min ≤ max")
    if args.port_min and (args.port_max - args.port_min + 1) < args.processes:
        raise CommandError("the port range is smaller than the number of processes")
    if args.control_port and args.control_port + args.processes - 1 > 65535:
        raise CommandError("--control-port + --processes runs past 65535")
    if args.capacity < 0:
        raise CommandError("--capacity must not be negative")
    if args.heartbeat <= 0 or args.ttl <= args.heartbeat:
        raise CommandError("--heartbeat must be positive and --ttl longer than it")


def _set_drain(args: argparse.Namespace) -> int:
    from media_relay.registry import check_node_id, get_node, set_drain

    node_id = args.drain or args.undrain
    on = bool(args.drain)
    if not args.redis_url:
        raise CommandError("--drain/--undrain need --redis-url (the registry)")
    try:
        check_node_id(node_id)
    except ValueError as exc:
        raise CommandError(str(exc)) from None

    async def apply() -> bool:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(args.redis_url)
        try:
            await set_drain(client, args.redis_prefix, node_id, on)
            return await get_node(client, args.redis_prefix, node_id) is not None
        finally:
            await client.aclose()

    try:
        live = asyncio.run(apply())
    except Exception as exc:
        print(f"etapalvelu relay: cannot reach Redis at {args.redis_url}: {exc}", file=sys.stderr)
        return 1
    state = "on" if on else "off"
    note = "" if live else " (the node is not registered now; the flag waits for it)"
    print(f"relay node {node_id}: draining {state}{note}", flush=True)
    return 0


def _config(args: argparse.Namespace, secret: str) -> Any:
    from media_relay.control import RelayConfig
    from media_relay.node import NodeConfig

    listen = args.listen_address
    announced = list(args.ice_address or [])
    if not announced and listen not in ("0.0.0.0", "::", ""):
        announced = [listen]
    try:
        relay = RelayConfig(
            listen_address=listen,
            announced_addresses=announced,
            port_min=args.port_min,
            port_max=args.port_max,
            transport_cc=args.transport_cc,
        )
        return NodeConfig(
            node_id=args.node_id or default_node_id(),
            secret=secret,
            relay=relay,
            control_host=args.control_host,
            control_port=args.control_port,
            advertise_url=args.advertise_url,
            capacity=args.capacity,
            site=args.site,
            redis_url=args.redis_url,
            redis_prefix=args.redis_prefix,
            heartbeat=args.heartbeat,
            ttl=args.ttl,
            metrics_token=read_metrics_token(args),
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _run_one(args: argparse.Namespace, secret: str) -> int:
    import uvloop

    from media_relay.node import run_node

    config = _config(args, secret)
    return int(uvloop.run(run_node(config)))


def child_args(args: argparse.Namespace, index: int) -> list[str]:
    """The command line of node process `index` of `args.processes`."""
    base_id = args.node_id or default_node_id()
    argv = [
        "relay",
        "--node-id",
        f"{base_id}-{index}",
        "--control-host",
        args.control_host,
        "--control-port",
        str(args.control_port + index if args.control_port else 0),
        "--listen-address",
        args.listen_address,
        "--redis-prefix",
        args.redis_prefix,
        "--capacity",
        str(args.capacity),
        "--heartbeat",
        str(args.heartbeat),
        "--ttl",
        str(args.ttl),
        "--log-level",
        args.log_level,
        "--transport-cc" if args.transport_cc else "--no-transport-cc",
    ]
    for address in args.ice_address or []:
        argv += ["--ice-address", address]
    if args.port_min:
        size = (args.port_max - args.port_min + 1) // args.processes
        low = args.port_min + index * size
        argv += ["--port-min", str(low), "--port-max", str(low + size - 1)]
    if args.redis_url:
        argv += ["--redis-url", args.redis_url]
    if args.site:
        argv += ["--site", args.site]
    if args.metrics_token_file:
        argv += ["--metrics-token-file", args.metrics_token_file]
    if args.advertise_url:
        raise CommandError("--advertise-url names one node: not with --processes > 1")
    return argv


def _supervise(args: argparse.Namespace, secret: str) -> int:
    children = [child_args(args, index) for index in range(args.processes)]
    env = {**os.environ, SECRET_ENV: secret}
    processes = [
        subprocess.Popen([sys.executable, "-m", "signaling.cli.main", *argv], env=env)
        for argv in children
    ]

    def forward(signum: int, _frame: Any) -> None:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    worst = 0
    for index, process in enumerate(processes):
        status = process.wait()
        if status != 0:
            print(f"etapalvelu relay: node process {index} exited with {status}", file=sys.stderr)
        worst = max(worst, abs(status))
    return worst
