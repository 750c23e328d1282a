"""A real Chromium publisher through the relay with transport-wide congestion control.

Chromium's answer keeps the relay's offer of the transport-wide-cc header extension; it then
numbers its packets, the relay answers with Transport Feedback every 50 ms, and Chromium's
send-side estimator (GoogCC) runs on it. A UDP proxy between the page and the relay
(tests/media_relay/lossy_link.py, all of the page's traffic passes through it) becomes a
narrow uplink on demand: Chromium's available outgoing bitrate (candidate-pair stats) must
fall to what the bottleneck carries, its encoder's target bitrate and then its frame size must
follow, and the estimate and the target must climb back once the bottleneck is gone. A second
run with the relay's feedback switched off shows the estimate does not climb without it (it
decays): what the first run sees is the feedback's doing.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from media_relay import codecs, packets, participant
from media_relay import transport_cc as tcc
from media_relay.aiortc_hooks import dtls_transport
from media_relay.control import LocalRelay
from tests.media_relay.conftest import Peer, wait_for
from tests.media_relay.lossy_link import CANDIDATE, LossyLink
from tests.support.relay_bridge import RelayBridge

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

PUBLISHER = "kiosk"

PAGE = """<!doctype html>
<html><body>
<script type="module">
import { connectBridge } from "/relay-bridge.js";
import { RelayClient } from "/static/common/js/relay-client.js";
const bridge = await connectBridge();
const client = new RelayClient({ iceServers: [], request: bridge.request });
bridge.onoffer = (offer) => client.handleOffer(offer);
const stream = await navigator.mediaDevices.getUserMedia({
  video: { width: 640, height: 480, frameRate: 30 }, audio: false,
});
await client.join({ camera: stream }, { hints: { camera: "maintain-framerate" } });
window.client = client;
window.joined = true;
window.sendStats = async () => {
  const report = await client.pc.getStats();
  const out = { available: null, target: null, width: null, bytesSent: null };
  report.forEach((s) => {
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
      out.available = s.availableOutgoingBitrate ?? null;
    }
    if (s.type === "outbound-rtp" && s.kind === "video") {
      out.target = s.targetBitrate ?? null;
      out.width = s.frameWidth ?? null;
      out.bytesSent = s.bytesSent ?? null;
    }
  });
  return out;
};
</script>
</body></html>
"""


def through_proxy(sdp: str, port: int) -> tuple[str, tuple[str, int] | None]:
    """Only the UDP 127.0.0.1 host candidate, pointed at the proxy's `port`; the original."""
    original: tuple[str, int] | None = None
    lines = []
    for line in sdp.split("\r\n"):
        if line.startswith("a=candidate:"):
            match = CANDIDATE.match(line)
            if match is None:
                continue
            original = original or (match.group(2), int(match.group(3)))
            line = CANDIDATE.sub(lambda m: f"{m.group(1)}127.0.0.1 {port}{m.group(4)}", line)
        lines.append(line)
    return "\r\n".join(lines), original


class ProxiedBridge(RelayBridge):
    """The bridge, with the publisher's SDP pointing both ends at the proxy."""

    def __init__(self, relay: LocalRelay, link: LossyLink) -> None:
        super().__init__(relay, "twcc-browser", PAGE)
        self.link = link
        self.answers: list[str] = []

    def _offer(self, offer: dict[str, Any]) -> dict[str, Any]:
        sdp, relay_addr = through_proxy(offer["sdp"], self.link.port(self.link.client_side))
        assert relay_addr is not None, offer["sdp"]
        self.link.relay_addr = relay_addr
        return {**offer, "sdp": sdp}

    async def on_offer(self, room_id: str, participant_id: str, offer: dict[str, Any]) -> None:
        if participant_id == PUBLISHER:
            offer = self._offer(offer)
        await super().on_offer(room_id, participant_id, offer)

    async def _request(
        self, participant_id: str, kind: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        if participant_id == PUBLISHER and kind == "answer":
            self.answers.append(str(payload["sdp"]))
            sdp, page_addr = through_proxy(payload["sdp"], self.link.port(self.link.relay_side))
            assert page_addr is not None, f"no 127.0.0.1 UDP candidate: {payload['sdp']}"
            self.link.client_addr = self.link.pin_client = page_addr
            payload = {**payload, "sdp": sdp}
        result = await super()._request(participant_id, kind, payload)
        if participant_id == PUBLISHER and kind == "join":
            result = {**result, "offer": self._offer(result["offer"])}
        return result


@pytest_asyncio.fixture
async def proxied(relay: LocalRelay) -> AsyncIterator[ProxiedBridge]:
    link = LossyLink(0.0, towards="relay")
    await link.start()
    try:
        bridge = ProxiedBridge(relay, link)
        async with bridge:
            yield bridge
    finally:
        link.close()


async def publish(browser: Any, bridge: ProxiedBridge, name: str = PUBLISHER) -> Any:
    """A page that publishes its camera as `name` (PUBLISHER's traffic goes through the
    proxy; anyone else's straight to the relay) and receives the others."""
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(bridge.page_url(name))
    await page.wait_for_function("() => window.joined === true", timeout=20_000)
    return page


class Samples:
    """Chromium's send-side figures, sampled every half second."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.rows: list[dict[str, Any]] = []

    async def take(self) -> dict[str, Any]:
        row = dict(await self.page.evaluate("window.sendStats()"))
        row["t"] = round(asyncio.get_running_loop().time(), 1)
        self.rows.append(row)
        return row

    async def until(self, predicate: Callable[[dict[str, Any]], bool], within: float) -> bool:
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            row = await self.take()
            if row["available"] is not None and predicate(row):
                return True
            await asyncio.sleep(0.5)
        return False

    def last(self, key: str) -> Any:
        return self.rows[-1][key] if self.rows else None


def video_section(sdp: str) -> str:
    return sdp.split("m=video", 1)[1].split("\nm=", 1)[0]


async def feedback_sent(relay: LocalRelay) -> int:
    stats = await relay.stats()
    camera = stats["rooms"]["twcc-browser"]["participants"][PUBLISHER]["published"]["camera"]
    assert camera["transport_cc"] is True, camera
    return int(camera["transport_feedback_sent"])


async def test_chromium_estimates_its_uplink_from_the_relays_transport_feedback(
    browser: Any, relay: LocalRelay, proxied: ProxiedBridge
) -> None:
    page = await publish(browser, proxied)
    # Chromium kept the extension and the feedback type: its own SDP says so
    local = await page.evaluate("window.client.pc.localDescription.sdp")
    section = video_section(local)
    assert re.search(
        rf"a=extmap:{codecs.TRANSPORT_CC_ID} {re.escape(tcc.TRANSPORT_CC_URI)}", section
    )
    assert re.search(r"a=rtcp-fb:\d+ transport-cc", section)
    samples = Samples(page)

    # 1. open link: the estimate climbs from Chromium's 300 kbit/s start (at once when its
    # first probes come out well, else by GoogCC's increase), the encoder follows
    assert await samples.until(lambda row: row["available"] >= 600_000, 30), samples.rows
    sent = [await feedback_sent(relay)]
    assert await samples.until(lambda row: (row["target"] or 0) >= 450_000, 15), samples.rows
    open_target = samples.last("target")
    open_width = samples.last("width")

    # 2. a 150 kbit/s uplink: the estimate falls to it, the encoder's target follows, and
    # after a while (libwebrtc's quality scaler) so does the picture size
    link = proxied.link
    link.rate_bps = 150_000
    link.queue_seconds = 0.3
    assert await samples.until(
        lambda row: row["available"] <= 250_000 and (row["target"] or 0) <= 250_000, 30
    ), samples.rows
    sent.append(await feedback_sent(relay))
    narrow = len(samples.rows)
    assert await samples.until(lambda row: (row["width"] or open_width) < open_width, 25), (
        samples.rows
    )
    # meanwhile the estimate stayed near what the link carries (it does not collapse, as it
    # does without feedback: see the next test) and the encoder within it
    held = [row for row in samples.rows[narrow:] if row["available"] is not None]
    assert all(60_000 <= row["available"] <= 300_000 for row in held), held
    assert all((row["target"] or 0) <= 250_000 for row in held), held
    narrow_target = samples.last("target")
    narrow_width = samples.last("width")

    # 3. the bottleneck goes: the estimate and the encoder climb back
    link.rate_bps = None
    assert await samples.until(lambda row: row["available"] >= 500_000, 45), samples.rows
    assert await samples.until(lambda row: (row["target"] or 0) >= 400_000, 15), samples.rows
    sent.append(await feedback_sent(relay))
    print(
        "chromium send-side:",
        {"open": (open_target, open_width), "narrow": (narrow_target, narrow_width)},
        [(r["t"], r["available"], r["target"], r["width"]) for r in samples.rows],
        sent,
    )
    assert sent == sorted(sent) and sent[0] > 0 and sent[-1] > 100, sent  # monotonic
    assert open_target > 2 * narrow_target, (open_target, narrow_target)


async def test_without_the_relays_feedback_the_estimate_does_not_climb(
    browser: Any, relay: LocalRelay, proxied: ProxiedBridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: the same call with the relay's Transport Feedback switched off."""
    monkeypatch.setattr(participant.Participant, "send_transport_feedback", lambda self, now: 0)
    page = await publish(browser, proxied)
    samples = Samples(page)
    await samples.until(lambda row: False, 12)
    highest = max(row["available"] or 0 for row in samples.rows)
    print("chromium without feedback:", [(r["t"], r["available"]) for r in samples.rows])
    assert highest < 450_000, samples.rows


async def test_chromium_with_transport_cc_still_follows_the_subscribers_remb(
    browser: Any, relay: LocalRelay, proxied: ProxiedBridge
) -> None:
    """transport-cc estimates the publisher's uplink; what its subscribers can take still
    reaches it as the relay's REMB, which Chromium's estimator takes as a ceiling: a
    subscriber reporting 250 kbit/s holds the publisher there, and letting go lifts it."""
    page = await publish(browser, proxied)
    samples = Samples(page)
    assert await samples.until(lambda row: (row["target"] or 0) >= 450_000, 30), samples.rows

    viewer = Peer(relay, "twcc-browser", "viewer", {})
    await proxied.join_peer("viewer", [], viewer.client.handle_offer)
    room = relay.rooms["twcc-browser"]
    try:
        assert await wait_for(lambda: viewer.frames.get((PUBLISHER, "camera"), 0) >= 5, 20)
        for receiver in viewer.client.pc.getReceivers():  # its own estimates silenced
            setattr(receiver, "_RTCRtpReceiver__remote_bitrate_estimator", None)  # noqa: B010
        stream = next(s for s in room.participants["viewer"].forwarded if s.track)
        dtls = dtls_transport(viewer.client.pc)
        assert dtls is not None
        wanted = [250_000]

        async def report() -> None:
            while True:
                await dtls._send_rtp(packets.build_remb(1, wanted[0], [stream.ssrc]))
                await asyncio.sleep(0.2)

        reporter = asyncio.ensure_future(report())
        try:
            assert await samples.until(
                lambda row: row["available"] <= 300_000 and (row["target"] or 0) <= 300_000, 15
            ), samples.rows
            camera = room.participants[PUBLISHER].published["camera"]
            assert camera.held_down_by == "viewer" and camera.remb_upstream == 250_000
            wanted[0] = 5_000_000
            assert await samples.until(lambda row: (row["target"] or 0) >= 450_000, 30), (
                samples.rows
            )
        finally:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
        print("chromium under REMB:", [(r["t"], r["available"], r["target"]) for r in samples.rows])
    finally:
        await viewer.close()


async def test_two_chromium_participants_keep_sending_remb_for_what_they_receive(
    browser: Any, relay: LocalRelay, proxied: ProxiedBridge
) -> None:
    """Both publish (transport-cc on their sending m-lines, the same extension ID in their
    BUNDLE) and receive each other: the relay blanks the publisher's transport-wide numbers in
    what it forwards, so each browser's receiving side keeps estimating with REMB — which the
    relay passes to the other publisher — and sends no Transport Feedback about it."""
    received: list[tuple[str, int, int]] = []
    on_rtcp = participant.Participant._on_rtcp

    def counting(self: participant.Participant, data: bytes) -> None:
        received.extend(
            (self.participant_id, i.packet_type, i.subtype) for i in packets.iter_rtcp(data)
        )
        on_rtcp(self, data)

    monkey = pytest.MonkeyPatch()
    monkey.setattr(participant.Participant, "_on_rtcp", counting)
    try:
        pages = [await publish(browser, proxied), await publish(browser, proxied, "expert")]
        room = relay.rooms["twcc-browser"]

        def estimates() -> dict[str, Any]:
            return {
                pid: [s.remb for s in p.forwarded if s.track is not None and s.kind == "video"]
                for pid, p in room.participants.items()
            }

        assert await wait_for(
            lambda: (
                len(estimates()) == 2
                and all(v and all(r is not None for r in v) for v in estimates().values())
            ),
            20,
        ), estimates()
        assert await wait_for(
            lambda: all(
                p.published["camera"].held_down_by is not None for p in room.participants.values()
            ),
            5,
        )
        for name, other in ((PUBLISHER, "expert"), ("expert", PUBLISHER)):
            camera = room.participants[name].published["camera"]
            assert camera.held_down_by == other and camera.transport_feedback_sent > 0
        assert not [r for r in received if r[1:] == (packets.RTCP_RTPFB, tcc.RTPFB_TRANSPORT_CC)]
        assert len(pages) == 2
    finally:
        monkey.undo()
