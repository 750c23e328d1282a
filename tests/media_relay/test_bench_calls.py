"""`etapalvelu bench relay --calls 2` runs end to end: real relay process, real aiortc call
legs in client processes, packets delivered, the JSON keys there. No performance asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_calls_smoke() -> None:
    etapalvelu = Path(sys.executable).with_name("etapalvelu")
    run = subprocess.run(
        [
            str(etapalvelu),
            "bench",
            "relay",
            "--calls",
            "2",
            "--calls-seconds",
            "2",
            "--first-media",
            "3",
            "--client-processes",
            "2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    for key in (
        "knee_calls",
        "cpu_pct_per_call",
        "rss_mb_per_call",
        "first_media_ms",
        "loss",
        "latency_us",
        "added_latency_us",
        "cpu_us_per_packet",
        "rss_return",
    ):
        assert key in result, key
    assert result["calls"] == 2
    assert result["sent_pps"] > 0
    assert result["loss"] < 0.5  # packets were delivered (no performance asserted)
    assert result["latency_us"]["p50"] is not None
    assert result["first_media_ms"]["samples"] == 3
    assert result["first_media_ms"]["p95"] is not None
    assert result["rss_return"]["rooms_left"] == 0
    assert result["failure_count"] == 0, result["failures"]
