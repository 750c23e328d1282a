"""`etapalvelu bench signaling --processes 2`: two serve processes on PostgreSQL + Redis behind
a real HAProxy; one is killed during the run and its clients are served again.

No performance is asserted: only that the bench ran end to end, its last line is the JSON it
promises, cross-process deliveries arrived, and the killed process's clients reconnected.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys

import pytest

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs Debian's haproxy"),
]


def _postgres_reachable() -> str | None:
    from signaling.cli.bench_cluster import BenchSetupError, _pg_execute

    try:
        asyncio.run(_pg_execute("SELECT 1"))
    except BenchSetupError as exc:
        return str(exc)
    return None


def test_cluster_bench_reports_and_recovers() -> None:
    why = _postgres_reachable()
    if why is not None:
        pytest.skip(f"needs PostgreSQL at 127.0.0.1:5432 (trust auth): {why}")
    result = subprocess.run(
        [
            sys.executable, "-m", "signaling", "bench", "signaling",
            "--processes", "2", "--clients", "20", "--seconds", "3", "--workers", "2",
        ],
        capture_output=True,
        text=True,
        timeout=200,
    )  # fmt: skip
    lines = result.stdout.strip().splitlines()
    assert lines, result.stderr
    report = json.loads(lines[-1])
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["processes"] == 2
    assert report["clients"] == 20
    for key in ("rtt_ms", "cross_ms", "baseline_rtt_ms"):
        assert set(report[key]) >= {"p50", "p99"}, key
        assert report[key]["p99"] is not None, key
    assert report["cross_samples"] > 0
    assert report["server_rss_kb_per_connection"] is not None
    # both processes had bench clients (leastconn), the killed one's clients came back
    assert report["clients_on_killed"] > 0
    assert report["dropped"] == report["clients_on_killed"]
    assert report["recovered"] == report["dropped"]
    assert report["not_recovered"] == 0
    assert isinstance(report["recovery_s"], float) and report["recovery_s"] > 0
    scratch = re.search(r"database (etapalvelu_bench_\w+),", result.stdout)
    assert scratch, result.stdout
    assert scratch.group(1) not in _databases().split(), "scratch database not dropped"


def _databases() -> str:
    from signaling.cli.bench_cluster import PG_HOST, PG_PORT, PG_USER

    async def names() -> str:
        import asyncpg

        connection = await asyncpg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres", timeout=5
        )
        try:
            rows = await connection.fetch("SELECT datname FROM pg_database")
        finally:
            await connection.close()
        return " ".join(row["datname"] for row in rows)

    return asyncio.run(names())
