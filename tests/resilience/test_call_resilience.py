"""A call between a kiosk and an expert, each Chromium in its own network namespace and the
service in a third, through real network faults (expert_console/resilience_bench.py).

Each case builds a fresh topology, service and call, lets media run, applies the fault, and
asserts that the call comes back by itself within 30 s (nobody touches either page; in the
expert-close case the expert's part is to open /expert and log in again). The failure message
says what the customer and the expert saw.

The case's figures against its targets (a 3 s link outage costs ≤ 5 s of media, a server
restart ≤ 10 s, 5 % loss keeps video ≥ 15 fps, a 500 kbit/s bottleneck keeps audio continuous
and video ≥ 10 fps at a lower resolution) are printed, not asserted: they are performance, and
move with the machine's load; `etapalvelu bench resilience` reports them.
"""

from __future__ import annotations

import pytest

from expert_console.resilience_bench import CASES, Options, run_case
from tests.support.browser import chromium_available
from tests.support.netns import require_netlab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Shorter than the benchmark's defaults (15 s impaired) to keep the folder within minutes.
# Only recovery is asserted: the fault comes after 4 s of steady media (still a full 4 s
# baseline), without the loss case's longer ramp-up (it only raises the printed fps figure;
# the bottleneck still waits until the call runs above the bottleneck's rate, or it would not
# bite), and 1 s is observed after recovery (the printed fps of an outage case).
TEST_OPTIONS = Options(seconds=10.0, steady=4.0, settle=3.0, recovery=30.0, after=1.0,
                       figure_ramp_up=False)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(CASES))
async def test_call_survives(name: str) -> None:
    require_netlab()
    if not chromium_available():
        pytest.fail("Chromium is missing: run scripts/test, which installs it")
    result = await run_case(name, TEST_OPTIONS)
    print(result.explain())
    assert result.error is None, result.explain()
    assert result.recovered, f"media did not come back by itself\n{result.explain()}"
    missed = [target for target, met in result.targets.items() if not met]
    print(f"targets not met in this run: {missed}" if missed else "all targets met in this run")
