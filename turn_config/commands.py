"""`etapalvelu turn config | credentials | check`: the operator's TURN tools."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from turn_config.errors import TurnConfigError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def register(root: Any, bench: Any) -> None:
    turn = root.add_parser(
        "turn",
        help="coturn configuration, short-lived TURN credentials and a TURN check",
        description="TURN for participants behind closed networks: write a hardened coturn "
        "configuration, mint TURN REST API credentials, check a deployment.",
    )
    commands = turn.add_subparsers(dest="turn_command", metavar="TURN_COMMAND")
    turn.set_defaults(func=lambda _args: (turn.print_help(), EXIT_BAD_INPUT)[1])

    config = commands.add_parser(
        "config",
        help="write a hardened coturn configuration (turnserver.conf)",
        description="Write turnserver.conf: 3478 UDP/TCP, TLS on 443, use-auth-secret with "
        "rotating secrets, denied private and special-purpose peers, quotas. Every line is "
        "commented. Exit status 2 on a bad value.",
    )
    config.add_argument("--realm", required=True, help="e.g. turn.example.fi")
    config.add_argument(
        "--secret-file",
        required=True,
        type=Path,
        action="append",
        help="file with shared secrets, one per line, newest first (repeatable)",
    )
    config.add_argument("--cert", required=True, type=Path, help="TLS certificate chain (PEM)")
    config.add_argument("--pkey", required=True, type=Path, help="TLS private key (PEM)")
    config.add_argument("--listening-ip", action="append", default=[], metavar="IP")
    config.add_argument("--relay-ip", action="append", default=[], metavar="IP")
    config.add_argument(
        "--external-ip",
        action="append",
        default=[],
        metavar="PUBLIC[/PRIVATE]",
        help="public address when coturn sits behind 1:1 NAT",
    )
    config.add_argument(
        "--media-relay-ip",
        action="append",
        default=[],
        metavar="IP|CIDR|FIRST-LAST",
        help="address of a media relay (SFU) node: allowed even when private (repeatable)",
    )
    config.add_argument(
        "--only-media-relay-peers",
        action="store_true",
        help="deny every peer except the media relay addresses (star topology)",
    )
    config.add_argument("--port", type=int, default=3478, help="TURN over UDP/TCP (3478)")
    config.add_argument("--tls-port", type=int, default=443, help="TURN over TLS (443)")
    config.add_argument("--min-port", type=int, default=49152, help="relay UDP range start")
    config.add_argument("--max-port", type=int, default=65535, help="relay UDP range end")
    config.add_argument("--user-quota", type=int, default=12)
    config.add_argument("--total-quota", type=int, default=1200)
    config.add_argument("--max-bps", type=int, default=0, help="bytes/s per session; 0: none")
    config.add_argument("--log-file", default="syslog", help="syslog, stdout or a path")
    config.add_argument(
        "-o", "--output", default="-", help="where to write it (default: standard output)"
    )
    config.set_defaults(func=_run_config)

    credentials = commands.add_parser(
        "credentials",
        help="print short-lived TURN credentials as TURN REST API JSON",
        description="Mint a credential with the first secret of --secret-file and print "
        '{"username", "password", "ttl", "uris"}.',
    )
    credentials.add_argument("--secret-file", required=True, type=Path)
    credentials.add_argument("--user", required=True, help="label for coturn's logs and quota")
    credentials.add_argument("--ttl", type=int, default=600, help="seconds (default 600)")
    credentials.add_argument(
        "--uri", action="append", default=[], metavar="URL", help="TURN/STUN URL (repeatable)"
    )
    credentials.set_defaults(func=_run_credentials)

    check = commands.add_parser(
        "check",
        help="allocate on a TURN server over UDP, TCP and TLS and say what works",
        description="A real TURN Allocate for every URL. A bare HOST checks "
        "turn:HOST:3478 over UDP and TCP and turns:HOST:443. Exit status 0 when every "
        "transport works, 1 when one fails, 2 on bad input.",
    )
    check.add_argument("target", nargs="+", help="TURN URL(s), or a bare host name")
    auth = check.add_mutually_exclusive_group(required=True)
    auth.add_argument("--secret-file", type=Path, help="mint a credential from this secret")
    auth.add_argument("--username", help="an existing credential's user name")
    check.add_argument("--password", help="with --username")
    check.add_argument("--user", default="turn-check", help="label when minting (turn-check)")
    check.add_argument("--timeout", type=float, default=5.0, help="seconds per transport")
    check.add_argument("--ca-file", help="trust this CA for TLS (private or test CAs)")
    check.add_argument("--json", action="store_true", help="print JSON only")
    check.set_defaults(func=_run_check)


def _fail(message: str) -> int:
    print(f"etapalvelu turn: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _run_config(args: argparse.Namespace) -> int:
    from turn_config.coturn_config import CoturnOptions, render, write_config
    from turn_config.credentials import read_secret_file

    try:
        secrets = [s for path in args.secret_file for s in read_secret_file(path)]
        options = CoturnOptions(
            realm=args.realm,
            secrets=secrets,
            cert=args.cert.resolve(),
            pkey=args.pkey.resolve(),
            listening_ips=args.listening_ip,
            relay_ips=args.relay_ip,
            external_ips=args.external_ip,
            media_relay_peers=args.media_relay_ip,
            only_media_relay_peers=args.only_media_relay_peers,
            port=args.port,
            tls_port=args.tls_port,
            min_port=args.min_port,
            max_port=args.max_port,
            user_quota=args.user_quota,
            total_quota=args.total_quota,
            max_bps=args.max_bps,
            log_file=args.log_file,
        )
        # The regenerate hint must not carry secrets; it names the secret files only.
        invoked = sys.argv[1:3] == ["turn", "config"]
        command = "etapalvelu " + shlex.join(sys.argv[1:]) if invoked else ""
        if args.output == "-":
            sys.stdout.write(render(options, command))
        else:
            write_config(options, Path(args.output), command)
            print(f"wrote {args.output}", file=sys.stderr)
    except TurnConfigError as exc:
        return _fail(str(exc))
    return EXIT_OK


def _run_credentials(args: argparse.Namespace) -> int:
    from turn_config.credentials import mint_credential, read_secret_file
    from turn_config.urls import parse_ice_url

    try:
        for uri in args.uri:
            parse_ice_url(uri)
        secret = read_secret_file(args.secret_file)[0]
        credential = mint_credential(secret, args.user, args.ttl)
    except TurnConfigError as exc:
        return _fail(str(exc))
    print(json.dumps(credential.rest_api_response(args.uri)))
    return EXIT_OK


def _run_check(args: argparse.Namespace) -> int:
    import asyncio

    from turn_config.allocation_check import check_urls, standard_urls
    from turn_config.credentials import mint_credential, read_secret_file
    from turn_config.urls import parse_ice_url

    try:
        texts: list[str] = []
        for target in args.target:
            # A bare host (or [IPv6]) means the standard trio; anything else must be a URL.
            bare = re.fullmatch(r"\[[0-9A-Fa-f:.]+\]|[^:/?\[\]\s]+", target) is not None
            texts.extend(standard_urls(target) if bare else [target])
        urls = [parse_ice_url(text) for text in texts]
        for url in urls:
            if not url.is_turn:
                raise TurnConfigError(f"{url} is a STUN URL; turn check needs turn: or turns:")
        if args.secret_file is not None:
            credential = mint_credential(read_secret_file(args.secret_file)[0], args.user, 600)
            username, password = credential.username, credential.password
        else:
            if not args.password:
                raise TurnConfigError("--username needs --password")
            username, password = args.username, args.password
        if not 0 < args.timeout <= 120:
            raise TurnConfigError("--timeout must be in (0, 120] seconds")
        if args.ca_file is not None and not Path(args.ca_file).is_file():
            raise TurnConfigError(f"CA file {args.ca_file} does not exist")
    except TurnConfigError as exc:
        return _fail(str(exc))

    results = asyncio.run(check_urls(urls, username, password, args.timeout, args.ca_file))
    if args.json:
        print(json.dumps([r.as_dict() for r in results]))
    else:
        for r in results:
            print(r.line())
        working = sorted({r.transport for r in results if r.ok})
        print(f"working transports: {', '.join(working) or 'none'}")
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED
