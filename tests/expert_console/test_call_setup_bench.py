"""The call-setup benchmark's arithmetic and command line (the run itself drives Chromium
and is `etapalvelu bench call-setup`, not a test)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from expert_console.call_setup_bench import BenchResult, percentile, report, summary
from signaling.cli.main import build_parser, main


def test_percentile_nearest_rank() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 95) == 5.0
    assert percentile(values, 0) == 1.0
    assert percentile([], 50) is None


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1), st.floats(0, 100))
def test_percentile_is_a_member_and_monotonic(values: list[float], q: float) -> None:
    p = percentile(values, q)
    assert p in values
    assert percentile(values, 100) == max(values)
    assert p is not None and p <= max(values)
    higher = percentile(values, min(100.0, q + 10))
    assert higher is not None and higher >= p


def test_summary_of_nothing_is_empty_not_an_error() -> None:
    assert summary([]) == {"p50": None, "p95": None, "mean": None, "min": None, "max": None}


def test_report_last_line_fields(capsys: object) -> None:
    result = BenchResult(expert_ms=[300.0, 400.0], kiosk_ms=[310.0, 420.0], baseline_ms=[250.0])
    figures = report(result, calls=2)
    assert figures["setup_ms"] == {"p50": 300.0, "p95": 400.0}
    assert figures["baseline_ms"]["p50"] == 250.0
    assert figures["measured"] == 2 and figures["failures"] == 0
    assert not math.isnan(figures["target_p50_ms"])


def test_command_is_registered_and_refuses_zero_calls() -> None:
    args = build_parser().parse_args(["bench", "call-setup", "--calls", "3"])
    assert args.calls == 3
    assert main(["bench", "call-setup", "--calls", "0"]) == 2
