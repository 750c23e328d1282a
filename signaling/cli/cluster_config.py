"""`etapalvelu cluster-config`: the files of a deployment with several signaling processes.

Writes into one folder:

- `haproxy.cfg`: one frontend (TLS terminated there with `--tls-pem`, plain HTTP otherwise), one
  backend with the N signaling processes, health checks on `/readyz`, `balance leastconn`, no
  stickiness (every client speaks socket.io over WebSocket only, so one session is one TCP
  connection that stays on one process), tunnel timeouts for long-lived websockets, and
  retries of a refused connection or a 503 on another process (a draining or dead process);
- `etapalvelu.env`: the settings every signaling process shares (database, Redis, relay mode,
  relay secret file, public URL);
- `etapalvelu-signaling@.service` (instance = port) and `etapalvelu-relay@.service` (instance =
  control port, with `relay-<port>.env` holding each node's UDP range);
- `DEPLOY.txt`: what runs where, and the PostgreSQL, Redis and coturn steps.

Nothing is written when an option is wrong (exit status 2 and one line saying which).
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

EXIT_OK, EXIT_BAD_INPUT = 0, 2

DEFAULT_EXEC = "/opt/etapalvelu/.venv/bin/etapalvelu"
RELAY_SECRET_FILE = "/etc/etapalvelu/relay-secret"
ENV_FILE = "/etc/etapalvelu/etapalvelu.env"


TLS13_SUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
NO_TLS = "not terminated here (plain HTTP): put TLS in front, or rerun with --tls-pem"


class ClusterConfigError(ValueError):
    """A bad option: the message names it."""


@dataclass(frozen=True)
class Backend:
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ClusterPlan:
    backends: list[Backend]
    signaling_host: str
    base_port: int
    relay_nodes: int
    relay_base_port: int
    relay_host: str
    relay_port_min: int
    relay_port_max: int
    relay_ice_addresses: list[str]
    public_url: str
    database_url: str
    redis_url: str
    tls_pem: str | None
    bind: str
    stats_socket: str
    executable: str
    check_interval_ms: int


def register(root: Any, _bench: Any) -> None:
    parser = root.add_parser(
        "cluster-config",
        help="write HAProxy, systemd and environment files for N signaling processes",
        description="Write haproxy.cfg (health checks on /readyz, leastconn, WebSocket-only "
        "clients so no stickiness, TLS termination with --tls-pem), systemd units for N "
        "signaling processes and M relay nodes, the shared environment file and deployment "
        "notes (PostgreSQL, Redis, coturn) into --out. Exit status 2 on a bad value.",
    )
    parser.add_argument(
        "--signaling", type=int, default=2, metavar="N", help="signaling processes (default 2)"
    )
    parser.add_argument(
        "--base-port",
        type=int,
        default=8081,
        metavar="P",
        help="first signaling port; they use P..P+N-1 (default 8081)",
    )
    parser.add_argument(
        "--signaling-host",
        default="127.0.0.1",
        metavar="IP",
        help="where the signaling processes listen and HAProxy reaches them "
        "(default 127.0.0.1: HAProxy on the same machine)",
    )
    parser.add_argument(
        "--server",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="a signaling process on another machine (repeatable); replaces "
        "--signaling/--base-port in haproxy.cfg",
    )
    parser.add_argument(
        "--relay-nodes",
        type=int,
        default=0,
        metavar="M",
        help="relay nodes on this machine (default 0: relays in-process)",
    )
    parser.add_argument(
        "--relay-base-port",
        type=int,
        default=7700,
        metavar="Q",
        help="first relay control port; nodes use Q..Q+M-1 (default 7700)",
    )
    parser.add_argument(
        "--relay-host",
        default="127.0.0.1",
        metavar="IP",
        help="address the relay nodes' control ports listen on (private)",
    )
    parser.add_argument("--relay-port-min", type=int, default=40000)
    parser.add_argument("--relay-port-max", type=int, default=49999)
    parser.add_argument(
        "--relay-ice-address",
        action="append",
        default=[],
        metavar="IP",
        help="public address the relay nodes announce (repeatable)",
    )
    parser.add_argument(
        "--public-url",
        required=True,
        metavar="URL",
        help="the address people open, e.g. https://etapalvelu.example.fi",
    )
    parser.add_argument(
        "--database-url",
        required=True,
        help="postgresql://user@host:5432/db (shared by every process)",
    )
    parser.add_argument("--redis-url", required=True, help="redis://host:6379/0")
    parser.add_argument(
        "--tls-pem",
        metavar="PATH",
        help="certificate chain + private key in one PEM: HAProxy terminates "
        "TLS on 443 (default: plain HTTP on 80, for a TLS proxy in front)",
    )
    parser.add_argument(
        "--bind",
        metavar="ADDR:PORT",
        help="HAProxy's listen address (default :443 with --tls-pem, else :80)",
    )
    parser.add_argument(
        "--stats-socket",
        default="/run/haproxy/admin.sock",
        metavar="PATH",
        help="HAProxy's admin socket (default /run/haproxy/admin.sock)",
    )
    parser.add_argument(
        "--check-interval-ms",
        type=int,
        default=1000,
        help="HAProxy's /readyz check interval (default 1000)",
    )
    parser.add_argument(
        "--exec",
        dest="executable",
        default=DEFAULT_EXEC,
        metavar="PATH",
        help=f"the etapalvelu command in the units (default {DEFAULT_EXEC})",
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="folder to write into (created; existing files are replaced)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        plan = plan_from_args(args)
        files = render(plan)
        write(args.out, files)
    except ClusterConfigError as exc:
        print(f"etapalvelu cluster-config: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for name in files:
        print(args.out / name)
    return EXIT_OK


def _port(value: int, what: str) -> int:
    if not 1 <= value <= 65535:
        raise ClusterConfigError(f"{what} {value}: must be 1-65535")
    return value


def _host(value: str, what: str) -> str:
    value = value.strip("[]")
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not value or any(c.isspace() or c in "#;\"'" for c in value):
            raise ClusterConfigError(f"{what} {value!r}: not an address or host name") from None
    return value


def _server(text: str) -> Backend:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ClusterConfigError(f"--server {text!r}: use HOST:PORT")
    return Backend(_host(host, "--server"), _port(int(port), "--server port"))


def _url(value: str, what: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(value)
    # a driver suffix is fine: postgresql+asyncpg://…
    if parts.scheme.split("+", 1)[0] not in schemes or not parts.hostname:
        raise ClusterConfigError(f"{what} {value!r}: expected {' or '.join(schemes)}://host…")
    if any(c.isspace() for c in value):
        raise ClusterConfigError(f"{what} {value!r}: contains white space")
    return value


def plan_from_args(args: argparse.Namespace) -> ClusterPlan:
    if args.server:
        backends = [_server(text) for text in args.server]
    else:
        if not 1 <= args.signaling <= 64:
            raise ClusterConfigError(f"--signaling {args.signaling}: must be 1-64")
        _port(args.base_port, "--base-port")
        _port(args.base_port + args.signaling - 1, "--base-port + --signaling - 1")
        host = _host(args.signaling_host, "--signaling-host")
        backends = [Backend(host, args.base_port + i) for i in range(args.signaling)]
    if len({b.address for b in backends}) != len(backends):
        raise ClusterConfigError("the same signaling address is given twice")
    if not 0 <= args.relay_nodes <= 256:
        raise ClusterConfigError(f"--relay-nodes {args.relay_nodes}: must be 0-256")
    if args.relay_nodes:
        _port(args.relay_base_port, "--relay-base-port")
        _port(args.relay_base_port + args.relay_nodes - 1, "--relay-base-port + --relay-nodes - 1")
        control_ports = set(range(args.relay_base_port, args.relay_base_port + args.relay_nodes))
        if not args.server and control_ports & {b.port for b in backends}:
            raise ClusterConfigError("relay control ports overlap the signaling ports")
    _port(args.relay_port_min, "--relay-port-min")
    _port(args.relay_port_max, "--relay-port-max")
    if args.relay_nodes and args.relay_port_max - args.relay_port_min + 1 < 2 * args.relay_nodes:
        raise ClusterConfigError(
            f"--relay-port-min..--relay-port-max ({args.relay_port_min}-{args.relay_port_max}) "
            f"is too small for {args.relay_nodes} relay nodes"
        )
    bind = args.bind or (":443" if args.tls_pem else ":80")
    bind_host, sep, bind_port = bind.rpartition(":")
    if not sep or not bind_port.isdigit():
        raise ClusterConfigError(f"--bind {bind!r}: use ADDR:PORT or :PORT")
    _port(int(bind_port), "--bind port")
    if bind_host:
        _host(bind_host, "--bind")
    if not 100 <= args.check_interval_ms <= 60_000:
        raise ClusterConfigError(f"--check-interval-ms {args.check_interval_ms}: 100-60000")
    tls_pem = args.tls_pem
    if tls_pem is not None and (not tls_pem.startswith("/") or any(c.isspace() for c in tls_pem)):
        raise ClusterConfigError(f"--tls-pem {tls_pem!r}: an absolute path without spaces")
    for what, path in (("--stats-socket", args.stats_socket), ("--exec", args.executable)):
        if not path.startswith("/") or any(c.isspace() for c in path):
            raise ClusterConfigError(f"{what} {path!r}: an absolute path without spaces")
    return ClusterPlan(
        backends=backends,
        signaling_host=_host(args.signaling_host, "--signaling-host"),
        base_port=args.base_port,
        relay_nodes=args.relay_nodes,
        relay_base_port=args.relay_base_port,
        relay_host=_host(args.relay_host, "--relay-host"),
        relay_port_min=args.relay_port_min,
        relay_port_max=args.relay_port_max,
        relay_ice_addresses=[_host(a, "--relay-ice-address") for a in args.relay_ice_address],
        public_url=_url(args.public_url, "--public-url", ("https", "http")).rstrip("/"),
        database_url=_url(args.database_url, "--database-url", ("postgresql",)),
        redis_url=_url(args.redis_url, "--redis-url", ("redis", "rediss")),
        tls_pem=tls_pem,
        bind=bind,
        stats_socket=args.stats_socket,
        executable=args.executable,
        check_interval_ms=args.check_interval_ms,
    )


def render(plan: ClusterPlan) -> dict[str, str]:
    files = {
        "haproxy.cfg": haproxy_cfg(plan),
        "etapalvelu.env": env_file(plan),
        "etapalvelu-signaling@.service": signaling_unit(plan),
        "DEPLOY.txt": deploy_notes(plan),
    }
    if plan.relay_nodes:
        files["etapalvelu-relay@.service"] = relay_unit(plan)
        for port, (low, high) in zip(relay_ports(plan), relay_udp_ranges(plan), strict=True):
            files[f"relay-{port}.env"] = (
                f"# relay node on control port {port}: its share of the UDP range\n"
                f"RELAY_PORT_MIN={low}\nRELAY_PORT_MAX={high}\n"
            )
    return files


def write(out: Path, files: dict[str, str]) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out / name).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ClusterConfigError(f"cannot write into {out}: {exc.strerror or exc}") from exc


def relay_ports(plan: ClusterPlan) -> list[int]:
    return [plan.relay_base_port + i for i in range(plan.relay_nodes)]


def relay_udp_ranges(plan: ClusterPlan) -> list[tuple[int, int]]:
    size = (plan.relay_port_max - plan.relay_port_min + 1) // max(plan.relay_nodes, 1)
    return [
        (plan.relay_port_min + i * size, plan.relay_port_min + (i + 1) * size - 1)
        for i in range(plan.relay_nodes)
    ]


def haproxy_cfg(plan: ClusterPlan) -> str:
    inter = plan.check_interval_ms
    checks = f"inter {inter}ms fastinter {max(inter // 2, 100)}ms downinter {inter}ms fall 2 rise 2"
    if plan.tls_pem:
        bind = f"    bind {plan.bind} ssl crt {plan.tls_pem} alpn http/1.1\n"
        redirect = (
            "\n# plain HTTP only redirects to HTTPS\nfrontend etapalvelu_http\n"
            "    bind :80\n    http-request redirect scheme https code 301\n"
            if plan.bind.endswith(":443")
            else ""
        )
        hsts = '    http-response set-header Strict-Transport-Security "max-age=31536000"\n'
    else:
        bind = f"    bind {plan.bind}\n"
        redirect = ""
        hsts = ""
    servers = "".join(
        f"    server signaling{i} {backend.address} check\n"
        for i, backend in enumerate(plan.backends)
    )
    return f"""\
# Etäpalvelu: HAProxy in front of {len(plan.backends)} signaling processes.
# Written by `etapalvelu cluster-config`. Check with `haproxy -c -f haproxy.cfg`.
#
# No stickiness: every client (the pages, the endpoint agent) speaks socket.io over WebSocket
# only, so a socket.io session is one TCP connection that HAProxy keeps on one process. A
# process that is draining (SIGTERM) or not ready answers /readyz with 503 and is taken out;
# its clients reconnect by themselves and land on another process.

global
    log stdout format raw local0 info
    stats socket {plan.stats_socket} mode 600 level admin
    # modern TLS only
    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets
    ssl-default-bind-ciphersuites {TLS13_SUITES}

defaults
    mode http
    log global
    option httplog
    option dontlognull
    timeout connect 5s
    # a check waits this long for /readyz; without it HAProxy gives up after the check
    # interval, and a busy live process answering slowly twice would go DOWN
    timeout check 3s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 30s
    # an upgraded websocket lives this long without traffic (socket.io pings every 20 s)
    timeout tunnel 1h
    timeout client-fin 5s
    # a refused connection or a 503 (a process that is draining or just died) is tried again
    # on another process before the client sees it
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response 503

frontend etapalvelu
{bind}{hsts}    # the signaling processes see the client's address
    option forwardfor
    # /metrics is for the monitoring network (metrics_address), never through the front door
    http-request deny deny_status 404 if {{ path_beg /metrics }}
    default_backend signaling
{redirect}
backend signaling
    balance leastconn
    option httpchk GET /readyz
    # a draining process counts these checks to know when it is out of rotation
    http-check send hdr X-Etapalvelu-Check haproxy
    http-check expect status 200
    # down after 2 failed checks, back after 2 good ones
    default-server {checks}
{servers}"""


def env_file(plan: ClusterPlan) -> str:
    lines = [
        "# Shared by every signaling process (EnvironmentFile= in etapalvelu-signaling@.service).",
        "# Written by `etapalvelu cluster-config`; keep it 0640 root:etapalvelu.",
        f"ETAPALVELU_PUBLIC_URL={plan.public_url}",
        f"ETAPALVELU_DATABASE_URL={plan.database_url}",
        f"ETAPALVELU_REDIS_URL={plan.redis_url}",
        "# HAProxy's address as the signaling processes see it: login limits then count the",
        "# client in X-Forwarded-For (only from these addresses; anyone else's header is ignored)",
    ]
    if plan.signaling_host in ("127.0.0.1", "::1", "localhost"):
        lines.append("ETAPALVELU_TRUSTED_PROXIES='[\"127.0.0.1/32\", \"::1/128\"]'")
    else:
        lines.append("# ETAPALVELU_TRUSTED_PROXIES='[\"10.0.0.10/32\", \"10.0.0.11/32\"]'")
    if plan.relay_nodes:
        lines += [
            "# calls go to the relay nodes registered in Redis (etapalvelu-relay@.service)",
            "ETAPALVELU_RELAY_MODE=nodes",
            f"ETAPALVELU_RELAY_SECRET_FILE={RELAY_SECRET_FILE}",
        ]
    else:
        lines += [
            "# no relay nodes: each process runs its relay in-process; with several processes",
            "# use relay nodes (--relay-nodes) so that a call's people may be on any process",
            "ETAPALVELU_RELAY_MODE=local",
        ]
    return "\n".join(lines) + "\n"


def signaling_unit(plan: ClusterPlan) -> str:
    ports = " ".join(str(plan.base_port + i) for i in range(len(plan.backends)))
    return f"""\
# One signaling process per instance; the instance is its port:
#   systemctl enable --now {" ".join(f"etapalvelu-signaling@{p}" for p in ports.split())}
# SIGTERM drains it: /readyz answers 503 at once (HAProxy takes it out), new sockets are refused,
# connected clients are told to reconnect (through HAProxy, to another process), in-flight work
# finishes, then it exits; at most ~10 s.
[Unit]
Description=Etäpalvelu signaling on port %i
After=network-online.target postgresql.service redis-server.service
Wants=network-online.target

[Service]
Type=simple
User=etapalvelu
Group=etapalvelu
EnvironmentFile={ENV_FILE}
StateDirectory=etapalvelu/signaling-%i
ExecStart={plan.executable} serve --host {plan.signaling_host} --port %i \\
    --data-dir /var/lib/etapalvelu/signaling-%i
KillSignal=SIGTERM
TimeoutStopSec=20
Restart=always
RestartSec=2
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
"""


def relay_unit(plan: ClusterPlan) -> str:
    ports = " ".join(f"etapalvelu-relay@{p}" for p in relay_ports(plan))
    ice = "".join(f" --ice-address {a}" for a in plan.relay_ice_addresses)
    return f"""\
# One relay node per instance; the instance is its control port, its UDP range is in
# /etc/etapalvelu/relay-<port>.env:
#   systemctl enable --now {ports}
[Unit]
Description=Etäpalvelu relay node on control port %i
After=network-online.target redis-server.service
Wants=network-online.target

[Service]
Type=simple
User=etapalvelu
Group=etapalvelu
EnvironmentFile={ENV_FILE}
EnvironmentFile=/etc/etapalvelu/relay-%i.env
ExecStart={plan.executable} relay --node-id %H-%i \\
    --control-host {plan.relay_host} --control-port %i --secret-file {RELAY_SECRET_FILE} \\
    --redis-url {plan.redis_url} --listen-address 0.0.0.0{ice} \\
    --port-min ${{RELAY_PORT_MIN}} --port-max ${{RELAY_PORT_MAX}}
KillSignal=SIGTERM
TimeoutStopSec=20
Restart=always
RestartSec=1
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
"""


def deploy_notes(plan: ClusterPlan) -> str:
    relay = (
        f"{plan.relay_nodes} relay nodes (etapalvelu-relay@{relay_ports(plan)[0]}…)"
        if plan.relay_nodes
        else "no relay nodes (in-process relays)"
    )
    return f"""\
Etäpalvelu deployment written by `etapalvelu cluster-config`
=============================================================

This folder: HAProxy in front of {len(plan.backends)} signaling processes, {relay}.

1. PostgreSQL (one primary, one streaming replica for failover), e.g. on 10.0.0.3:
     apt install postgresql
     createuser etapalvelu; createdb -O etapalvelu etapalvelu
   Allow the signaling machines in pg_hba.conf (scram-sha-256). The first `serve` migrates
   the schema. Database URL: {plan.database_url}

2. Redis (socket.io messages between processes, relay registry, presence), e.g. on 10.0.0.2:
     apt install redis-server   # bind to the private address, requirepass or an ACL
   Redis URL: {plan.redis_url}

3. Signaling processes (each machine):
     install -m 0640 etapalvelu.env {ENV_FILE}
     install -m 0644 etapalvelu-signaling@.service /etc/systemd/system/
     systemctl daemon-reload
     systemctl enable --now {" ".join(f"etapalvelu-signaling@{b.port}" for b in plan.backends)}

4. Relay nodes (each relay machine; one node per core):
     openssl rand -hex 32 > {RELAY_SECRET_FILE}; chmod 600 {RELAY_SECRET_FILE}
     (the same secret on every signaling and relay machine)
     install -m 0644 etapalvelu-relay@.service /etc/systemd/system/
     install -m 0644 relay-*.env /etc/etapalvelu/
     systemctl enable --now etapalvelu-relay@<port> …

5. HAProxy (two machines, a floating address with keepalived, or two DNS A records):
     apt install haproxy
     install -m 0644 haproxy.cfg /etc/haproxy/haproxy.cfg
     haproxy -c -f /etc/haproxy/haproxy.cfg && systemctl reload haproxy
   TLS: {plan.tls_pem or NO_TLS}
   (the PEM holds the certificate chain followed by the private key).
   Public address: {plan.public_url}

6. coturn (TURN for closed networks), on its own address since it wants 443 too:
     apt install coturn
     etapalvelu turn config --realm turn.example.fi --secret-file /etc/etapalvelu/turn-secrets \\
         --cert … --pkey … --external-ip … --media-relay-ip … -o /etc/turnserver.conf
   (turn_config/: a hardened turnserver.conf, short-lived credentials, `etapalvelu turn check`.)
   Add to {ENV_FILE}: ETAPALVELU_TURN_URLS='["turn:turn.example.fi:3478?transport=udp",
   "turns:turn.example.fi:443?transport=tcp"]' and ETAPALVELU_TURN_SECRETS from the same file.

Restart one signaling process at a time (`systemctl restart etapalvelu-signaling@PORT`): it
drains (SIGTERM), HAProxy takes it out within two checks, its clients reconnect to the others.
"""
