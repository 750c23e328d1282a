"""`etapalvelu bench relay` runs end to end: the shipped relay service as a subprocess, the
paced publisher and event-driven subscribers, JSON on the last line. No performance asserted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ETAPALVELU = Path(sys.executable).with_name("etapalvelu")


def run_bench(*args: str, timeout: float) -> tuple[dict[str, Any], str]:
    command = [str(ETAPALVELU), "bench", "relay", "--subscribers", "1", "--seconds", "2", *args]
    done = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={k: v for k, v in os.environ.items() if not k.startswith("ETAPALVELU_")},
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert lines, output[-3000:]
    return json.loads(lines[-1]), done.stdout


def check_figures(figures: dict[str, Any]) -> None:
    latency = figures["added_latency_us"]
    assert set(latency) >= {"p50", "p99"}
    assert latency["p50"] is not None and latency["p99"] is not None
    assert figures["received_packets"] > 0
    assert figures["delivered_ratio"] > 0


def test_bench_relay_measures_the_service() -> None:
    result, stdout = run_bench(timeout=240)
    for key in (
        "added_latency_us",
        "janus_added_latency_us",
        "per_n",
        "placement",
        "cpu_us_per_packet",
        "received_packets",
        "delivered_ratio",
        "direct_path_us",
    ):
        assert key in result, key
    assert result["relay"].startswith("etapalvelu relay")
    assert result["janus_added_latency_us"] is None
    assert result["subscribers"] == 1
    assert not result["pinned"]
    check_figures(result)
    check_figures(result["per_n"]["1"]["relay"])
    # audio and video both went through the relay and reached the subscriber
    assert result["received_pps"] > 0
    assert "placement: unpinned" in stdout


@pytest.mark.skipif(
    shutil.which("janus") is None,
    reason="Debian's janus is not installed (apt-get install -y janus): no Janus comparison",
)
def test_bench_relay_compares_with_janus() -> None:
    result, stdout = run_bench("--compare", "janus", "--runs", "1", timeout=280)
    assert result["janus_version"]
    janus = result["janus_added_latency_us"]
    assert janus is not None and janus["p50"] is not None and janus["p99"] is not None
    entry = result["per_n"]["1"]
    check_figures(entry["relay"])
    check_figures(entry["janus"])
    assert set(entry["ratio"]) == {"p50", "p99", "cpu_us_per_packet"}
    assert "ours/janus" in stdout
