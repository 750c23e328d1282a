"""`etapalvelu endpoint`: run the office's endpoint agent (the document camera publisher)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(root: Any, bench: Any) -> None:
    del bench  # the agent has no benchmark of its own (see `bench document-camera`)
    parser = root.add_parser(
        "endpoint",
        help="run the office's endpoint agent: publish the document camera into calls",
        description="Log in to the signaling server as the office's kiosk, wait for the "
        "office's call and publish the document camera into it as its own participant. "
        "Send SIGUSR1 to take a full-resolution still into the current call (as the "
        "console's Take still does): it reaches the kiosk and the expert end-to-end "
        "encrypted; no copy is written to this machine's disk.",
    )
    parser.add_argument("--server", required=True, help="signaling server URL, e.g. "
                        "http://127.0.0.1:8080")
    parser.add_argument("--endpoint-id", type=int, required=True, help="the kiosk's id")
    parser.add_argument("--credential-file", type=Path, required=True,
                        help="file holding the kiosk's credential (one line)")
    parser.add_argument("--source", default="synthetic",
                        help="synthetic | synthetic:plan | file:PATH | v4l2:/dev/videoN")
    parser.add_argument("--ice-address", action="append", dest="ice_addresses", metavar="IP",
                        help="local address for ICE host candidates (repeatable; default: "
                        "every non-loopback interface)")
    parser.add_argument("--size", default="1088x1536", metavar="WxH",
                        help="document track resolution (kept when bandwidth drops)")
    parser.add_argument("--max-bitrate", type=int, default=2_000_000, metavar="BPS",
                        help="cap of the document track's bitrate")
    parser.add_argument("--max-fps", type=float, default=8.0, help="frame rate at full rate")
    parser.add_argument("--camera-target", default="text-10pt", metavar="TARGET",
                        help="what the expert must read: text-8pt, text-10pt (any "
                        "text-<points>pt) or plans (7 pt dimension numbers); a camera whose "
                        "resolution cannot carry it is reported to the clerk "
                        "(default text-10pt)")
    # Removed: it used to divert stills to the agent's disk instead of the call. Still
    # recognised, so that an old service file fails with an explanation.
    parser.add_argument("--stills-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--log-level", default="INFO")
    parser.set_defaults(func=_run)


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--size: {text!r} is not WIDTHxHEIGHT") from None
    if not (64 <= width <= 4096 and 64 <= height <= 4096) or width % 2 or height % 2:
        raise SystemExit("--size: even sides between 64 and 4096 pixels")
    return width, height


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import signal
    import sys

    from document_camera.rate_control import RatePolicy
    from document_camera.sources import SourceError, open_source
    from endpoint.agent import AgentOptions, EndpointAgent

    if args.stills_dir is not None:
        print("--stills-dir was removed: stills always go into the call, end-to-end "
              "encrypted, and no copy is kept on the agent's disk (customers' documents "
              "must not pile up on an office machine). Remove the option.", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        credential = args.credential_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        print(f"cannot read the credential file: {exc}", file=sys.stderr)
        return 2
    if not credential:
        print("the credential file is empty", file=sys.stderr)
        return 2
    try:
        source = open_source(args.source)
    except (SourceError, ValueError) as exc:
        print(f"document camera: {exc}", file=sys.stderr)
        return 2
    from document_camera.guidance import parse_target

    try:
        parse_target(args.camera_target)
    except ValueError as exc:
        print(f"--camera-target: {exc}", file=sys.stderr)
        return 2
    options = AgentOptions(
        camera_target=args.camera_target,
        server=args.server,
        endpoint_id=args.endpoint_id,
        credential=credential,
        host_addresses=args.ice_addresses,
        size=parse_size(args.size),
        policy=RatePolicy(max_bitrate=args.max_bitrate, max_fps=args.max_fps),
    )

    async def main() -> int:
        agent = EndpointAgent(options, source)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(agent.stop()))
        loop.add_signal_handler(signal.SIGUSR1,
                                lambda: asyncio.ensure_future(agent.take_still()))
        try:
            await agent.run_forever()
        except Exception as exc:  # connection refused, bad credential
            print(f"endpoint agent: {exc}", file=sys.stderr)
            await agent.stop()
            return 1
        return 0

    return asyncio.run(main())
