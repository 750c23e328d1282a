"""`etapalvelu bench documents`: a document end to end through the running service.

Starts the whole service on 127.0.0.1 (a temporary data folder, demo data), sets up a call
between the demo kiosk and the demo Kela expert, and moves one file from kiosk to expert:

* encrypted — encrypt, upload the ciphertext, download it, decrypt and verify, receipt;
* plain (the baseline) — the same bytes over the same HTTP path unencrypted, SHA-256 checked;
* data channel — the same ciphertext over an aiortc↔aiortc SCTP data channel on loopback
  (the path a relay data channel would take; the SFU forwards media only);
* with --browser, encrypted from a Chromium page to another (WebCrypto, the real
  document-channel.js), kiosk to console, through the same service.

MB is 10^6 bytes. The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_MB_S = 10.0


def register(root: Any, bench: Any) -> None:
    del root
    parser = bench.add_parser(
        "documents",
        help="encrypted document transfer through the running service vs. unencrypted",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size-mb", type=float, default=20.0, help="file size in MB (10^6 B)")
    parser.add_argument("--runs", type=int, default=3, help="transfers per path (median)")
    parser.add_argument("--no-datachannel", action="store_true",
                        help="skip the aiortc data-channel measurement")
    parser.add_argument("--browser", action="store_true",
                        help="also send the file between two Chromium pages (WebCrypto), "
                        "kiosk page to console page, through the service")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    result = asyncio.run(bench_documents(int(args.size_mb * 1_000_000), args.runs,
                                         not args.no_datachannel, args.browser))
    print(json.dumps(result, sort_keys=True))
    return 0


def _payload(size: int) -> bytes:
    # A PDF-looking file of incompressible bytes (nothing on the path compresses anyway).
    block = hashlib.sha256(b"bench").digest()
    body = bytearray(b"%PDF-1.7\n")
    while len(body) < size:
        block = hashlib.sha256(block).digest()
        body += block * 64
    return bytes(body[:size])


async def bench_documents(
    size: int, runs: int, datachannel: bool, browser: bool = False
) -> dict[str, Any]:
    from aiohttp import web

    from signaling.config import Settings
    from signaling.server.app import create_app
    from signaling.server.demo import seed_demo

    content = _payload(size)
    with tempfile.TemporaryDirectory(prefix="etapalvelu-bench-") as tmp:
        port = _free_port()
        settings = Settings.model_validate({
            "host": "127.0.0.1", "port": port, "data_dir": Path(tmp) / "data",
            "ice_addresses": ["127.0.0.1"], "stun_urls": [], "turn_urls": [],
            "relay_listen_address": "127.0.0.1",
        })
        app, services = create_app(settings, demo=False)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            demo = await seed_demo(services.sessions)
            base_url = f"http://127.0.0.1:{port}"
            print(f"service on {base_url}; file {size / 1e6:.1f} MB, {runs} run(s) per path")
            encrypted, plain = await _through_service(services, settings, demo, base_url,
                                                      content, runs)
            browser_runs = (await _browser_seconds(services, demo, base_url, size, runs)
                            if browser else [])
        finally:
            await runner.cleanup()
    enc_mb_s = statistics.median(size / 1e6 / t for t in encrypted)
    plain_mb_s = statistics.median(size / 1e6 / t for t in plain)
    print(f"encrypted (HTTP, end to end): {enc_mb_s:8.1f} MB/s   runs: "
          + ", ".join(f"{t * 1000:.0f} ms" for t in encrypted))
    print(f"plain baseline (HTTP):         {plain_mb_s:8.1f} MB/s   runs: "
          + ", ".join(f"{t * 1000:.0f} ms" for t in plain))
    result: dict[str, Any] = {
        "size_bytes": size,
        "encrypted_mb_s": round(enc_mb_s, 1),
        "plain_mb_s": round(plain_mb_s, 1),
        "encrypted_ms": [round(t * 1000) for t in encrypted],
        "plain_ms": [round(t * 1000) for t in plain],
        "target_mb_s": TARGET_MB_S,
        "meets_target": enc_mb_s >= TARGET_MB_S,
    }
    if browser_runs:
        browser_mb_s = statistics.median(size / 1e6 / t for t in browser_runs)
        print(f"encrypted, Chromium page to page: {browser_mb_s:8.1f} MB/s   runs: "
              + ", ".join(f"{t * 1000:.0f} ms" for t in browser_runs))
        result["browser_encrypted_mb_s"] = round(browser_mb_s, 1)
    if datachannel:
        from endpoint.document_crypto import CallKeyPair, DocumentMetadata, encrypt_document

        sender, receiver = CallKeyPair.generate(), CallKeyPair.generate()
        ciphertext = encrypt_document(content, DocumentMetadata.describe("b.pdf", content),
                                      sender, [receiver.public_bytes])
        seconds = await _datachannel_seconds(ciphertext)
        dc_mb_s = size / 1e6 / seconds
        print(f"data channel (aiortc SCTP, loopback, ciphertext only): {dc_mb_s:8.1f} MB/s "
              f"({seconds * 1000:.0f} ms)")
        result["datachannel_mb_s"] = round(dc_mb_s, 1)
    return result


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _through_service(
    services: Any, settings: Any, demo: Any, base_url: str, content: bytes, runs: int
) -> tuple[list[float], list[float]]:
    import socketio
    from sqlalchemy import select

    from endpoint.document_channel import DocumentChannel
    from signaling.directory.identity import issue_session
    from signaling.store.models import User

    async with services.sessions() as session:
        user = (await session.execute(select(User).where(User.username == "kela"))).scalar_one()
        token = (await issue_session(session, user, 3600)).token
        await session.commit()
    kiosk_sio = socketio.AsyncClient(reconnection=False)
    expert_sio = socketio.AsyncClient(reconnection=False)
    await kiosk_sio.connect(base_url, transports=["websocket"], auth={
        "endpoint_id": demo.endpoint_id, "credential": demo.endpoint_credential})
    await expert_sio.connect(base_url, transports=["websocket"], auth={"token": token})
    kiosk = DocumentChannel(kiosk_sio, base_url, 0)
    expert = DocumentChannel(expert_sio, base_url, 0)
    try:
        for client in (kiosk_sio, expert_sio):
            await client.call("flow:sync", {})
        taken = await kiosk_sio.call("ticket:take", {"authority": "kela", "language": "fin"})
        call = await expert_sio.call("queue:take_next", {})
        if not (taken.get("ok") and call.get("ok")):
            raise RuntimeError(f"could not start a call: {taken} {call}")
        kiosk.call_id = expert.call_id = int(call["call"]["id"])
        services.extras["bench_call_id"] = kiosk.call_id
        await kiosk.start()
        await expert.start()
        async with asyncio.timeout(10):
            await kiosk.wait_for_peer(expert.participant_id)
        encrypted: list[float] = []
        plain: list[float] = []
        for _ in range(runs):
            started = time.perf_counter()
            sent = await kiosk.send("bench.pdf", content)
            received = await expert.receive()
            await kiosk.wait_delivered(sent.transfer_id)
            encrypted.append(time.perf_counter() - started)
            if received.content != content:
                raise RuntimeError("the received document differs")

            started = time.perf_counter()
            await _plain_transfer(kiosk, expert, content)
            plain.append(time.perf_counter() - started)
        return encrypted, plain
    finally:
        await kiosk.close()
        await expert.close()
        await kiosk_sio.disconnect()
        await expert_sio.disconnect()


async def _plain_transfer(kiosk: Any, expert: Any, content: bytes) -> None:
    """The baseline: the same offer / upload / download / receipt path, no encryption."""
    loop = asyncio.get_running_loop()
    digest = await loop.run_in_executor(None, lambda: hashlib.sha256(content).hexdigest())
    ack = await kiosk._call("documents:offer", {
        "call_id": kiosk.call_id, "recipients": [expert.participant_id], "suite": 1,
        "ciphertext_bytes": len(content), "sha256": digest, "size": len(content),
        "type": "application/pdf"})
    kiosk.expect_delivery(ack["transfer_id"], [expert.participant_id])
    await kiosk.upload_bytes(ack["transfer_id"], ack["upload_url"], content)
    incoming = await expert.incoming.get()
    data = await expert.download_bytes(incoming["transfer_id"], incoming["download_url"],
                                       int(incoming["ciphertext_bytes"]))
    got = await loop.run_in_executor(None, lambda: hashlib.sha256(data).hexdigest())
    if got != digest:
        raise RuntimeError("plain transfer corrupted")
    await expert._call("documents:receipt", {
        "transfer_id": ack["transfer_id"], "verdict": "received", "sha256": digest,
        "size": len(content), "type": "application/pdf"})
    await kiosk.wait_delivered(ack["transfer_id"])


async def _datachannel_seconds(data: bytes, message_bytes: int = 16384) -> float:
    """Seconds to move `data` over an aiortc data channel between two local peers."""
    import aioice.ice
    from aiortc import RTCConfiguration, RTCPeerConnection

    # aioice leaves loopback out of host candidates; this benchmark talks over loopback only.
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    config = RTCConfiguration(iceServers=[])
    sender_pc, receiver_pc = RTCPeerConnection(config), RTCPeerConnection(config)
    done = asyncio.Event()
    received = 0

    @receiver_pc.on("datachannel")
    def on_channel(channel: Any) -> None:
        @channel.on("message")
        def on_message(message: bytes) -> None:
            nonlocal received
            received += len(message)
            if received >= len(data):
                done.set()

    channel = sender_pc.createDataChannel("documents")
    opened = asyncio.Event()
    channel.on("open", opened.set)
    low = asyncio.Event()
    channel.bufferedAmountLowThreshold = 1 << 20
    channel.on("bufferedamountlow", low.set)
    try:
        await sender_pc.setLocalDescription(await sender_pc.createOffer())
        await receiver_pc.setRemoteDescription(sender_pc.localDescription)
        await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
        await sender_pc.setRemoteDescription(receiver_pc.localDescription)
        async with asyncio.timeout(20):
            await opened.wait()
        started = time.perf_counter()
        view = memoryview(data)
        async with asyncio.timeout(300):
            for offset in range(0, len(data), message_bytes):
                channel.send(bytes(view[offset : offset + message_bytes]))
                if channel.bufferedAmount > 4 << 20:
                    low.clear()
                    await low.wait()
            await done.wait()
        return time.perf_counter() - started
    finally:
        await sender_pc.close()
        await receiver_pc.close()


BROWSER_HOST = """<!doctype html><meta charset="utf-8"><title>bench</title>
<script src="/static/vendor/socket.io.min.js"></script>
<script type="module">
import { DocumentChannel } from "/static/common/js/document-channel.js";
const params = __PARAMS__;
const socket = io({ auth: params.auth, transports: ["websocket"] });
socket.on("connect", async () => {
  if (window.channel) return;
  window.channel = new DocumentChannel(socket, params.callId);
  window.channel.addEventListener("incoming", async (e) => {
    const started = performance.now();
    const doc = await window.channel.receive(e.detail);
    (window.received = window.received || []).push(performance.now() - started);
  });
  await window.channel.start();
  window.ready = true;
});
</script>"""

BROWSER_SEND = """async (size) => {
  const bytes = new Uint8Array(size);
  bytes.set([0x25, 0x50, 0x44, 0x46, 0x2d]);
  for (let i = 5; i < size; i += 4096) bytes[i] = i & 255;
  const started = performance.now();
  await window.channel.send({ name: "bench.pdf", bytes });
  return performance.now() - started;
}"""


async def _browser_seconds(
    services: Any, demo: Any, base_url: str, size: int, runs: int
) -> list[float]:
    """Kiosk page → console page in headless Chromium, WebCrypto on both ends."""
    from playwright.async_api import async_playwright
    from sqlalchemy import select

    from signaling.directory.identity import issue_session
    from signaling.store.models import User

    async with services.sessions() as session:
        user = (await session.execute(select(User).where(User.username == "kela"))).scalar_one()
        token = (await issue_session(session, user, 3600)).token
        await session.commit()
    call_id = services.extras["bench_call_id"]
    from expert_console.chromium import CHROMIUM, CHROMIUM_ARGS

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pages = []
        try:
            for auth in ({"endpoint_id": demo.endpoint_id,
                          "credential": demo.endpoint_credential}, {"token": token}):
                page = await (await chromium.new_context()).new_page()
                await page.goto(base_url + "/")  # the service's origin (loopback access)
                params = json.dumps({"auth": auth, "callId": call_id})
                await page.set_content(BROWSER_HOST.replace("__PARAMS__", params))
                await page.wait_for_function("window.ready === true", timeout=20000)
                pages.append(page)
            sender, receiver = pages
            await sender.wait_for_function("window.channel.others().length > 0")
            seconds = []
            for run in range(runs):
                started = time.perf_counter()
                send_ms = await sender.evaluate(BROWSER_SEND, size)
                await receiver.wait_for_function(
                    f"(window.received || []).length > {run}", timeout=120000, polling=20)
                seconds.append(time.perf_counter() - started)
                receive_ms = await receiver.evaluate(f"window.received[{run}]")
                print(f"  browser run {run + 1}: encrypt + upload {send_ms:.0f} ms, "
                      f"download + decrypt + verify {receive_ms:.0f} ms")
            return seconds
        finally:
            await chromium.close()
