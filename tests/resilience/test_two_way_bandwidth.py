"""Both directions of a two-way Chromium call through the service ramp up with transport-cc.

The kiosk and the expert (Chromium, fake camera and microphone, each in its own network
namespace; the service, `etapalvelu serve --demo`, in a third: expert_console/
resilience_bench.py) publish and receive over one peer connection each. The service offers
transport-wide congestion control by default, so each browser's send-side estimator runs on
the relay's Transport Feedback, capped by the other browser's REMB passed on by the relay.

Before transport-cc was kept off audio (codecs.with_transport_cc), one direction stayed at
100–220 kbit/s and 320×180–480×270 for the whole call in 4 of 5 runs here: the audio and the
packets' overhead took ~100 kbit/s out of a REMB-capped estimate, and a Chromium subscriber's
REMB cannot climb above 1.5 × the video it receives + 10 kbit/s. These are functional
thresholds (the estimator is not stuck), far below what a run reaches when it works (both
directions ≥ 400 kbit/s and ≥ 640 wide after 20–28 s on this 2-core machine), not figures.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from expert_console.resilience_bench import CallHarness
from media_relay import codecs
from media_relay import transport_cc as tcc
from tests.support.browser import chromium_available
from tests.support.netns import require_netlab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RAMP_UP = 50.0  # seconds after the call started
MIN_AVAILABLE = 350_000  # bit/s, candidate-pair availableOutgoingBitrate, each side
MIN_WIDTH = 640  # outbound camera frameWidth, each side

SEND_STATS_JS = """async () => {
  const pc = (window.__etapalvelu && window.__etapalvelu.pc) || null;
  if (!pc) return null;
  const out = {available: null, target: null, width: null, limit: null,
               sdp: pc.localDescription ? pc.localDescription.sdp : ""};
  (await pc.getStats()).forEach((s) => {
    if (s.type === "candidate-pair" && s.availableOutgoingBitrate !== undefined) {
      out.available = Math.max(out.available || 0, s.availableOutgoingBitrate);
    }
    const wider = (s.frameWidth || 0) >= (out.width || 0);
    if (s.type === "outbound-rtp" && s.kind === "video" && wider) {
      out.target = s.targetBitrate ?? null;
      out.width = s.frameWidth ?? null;
      out.limit = s.qualityLimitationReason || null;
    }
  });
  return out;
}"""


def sections(sdp: str, kind: str) -> list[str]:
    return [part.split("\nm=", 1)[0] for part in sdp.split(f"m={kind}")[1:]]


def ramped(row: dict[str, Any] | None) -> bool:
    return (
        row is not None
        and (row["available"] or 0) >= MIN_AVAILABLE
        and (row["width"] or 0) >= MIN_WIDTH
    )


@pytest.mark.timeout(180)
async def test_both_directions_ramp_up_with_transport_cc() -> None:
    require_netlab()
    if not chromium_available():
        pytest.fail("Chromium is missing: run scripts/test, which installs it")
    harness = CallHarness()
    try:
        await harness.start()  # both pages decode the other's video
        rows: list[dict[str, Any]] = []
        started = time.monotonic()
        latest: dict[str, dict[str, Any] | None] = {}
        while time.monotonic() - started < RAMP_UP:
            for side in harness.sides:
                latest[side.name] = await side.page.evaluate(SEND_STATS_JS)
            rows.append(
                {"t": round(time.monotonic() - started, 1)}
                | {
                    name: None if row is None else {k: v for k, v in row.items() if k != "sdp"}
                    for name, row in latest.items()
                }
            )
            if all(ramped(row) for row in latest.values()):
                break
            await asyncio.sleep(1.0)
        print("send side (t s, available bit/s, target bit/s, width, limit):")
        for row in rows:
            print(
                f"  {row['t']:5.1f}",
                *(
                    f"{name} {r['available']} {r['target']} {r['width']} {r['limit']}"
                    for name, r in row.items()
                    if name != "t" and r is not None
                ),
            )
        extmap = rf"a=extmap:{codecs.TRANSPORT_CC_ID} {re.escape(tcc.TRANSPORT_CC_URI)}"
        for name, row in latest.items():
            assert row is not None, f"{name}: no peer connection"
            # the service negotiated transport-cc (its default) on the camera, not on audio
            assert any(re.search(extmap, part) for part in sections(row["sdp"], "video")), name
            assert not any(re.search(extmap, part) for part in sections(row["sdp"], "audio"))
        stuck = [name for name, row in latest.items() if not ramped(row)]
        assert not stuck, f"{stuck} stayed below {MIN_AVAILABLE} bit/s or {MIN_WIDTH} wide: {rows}"
    finally:
        await harness.close()
