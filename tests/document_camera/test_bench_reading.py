"""Smoke test of the document-camera reading benchmark: a tiny configuration runs end to end
and its figures are sane; the judging of crops is checked on its own."""

from __future__ import annotations

import numpy as np

from document_camera.bench_reading import ReadingOptions, judge, run_reading, verdicts
from document_camera.notices import Notice, NoticeCode
from document_camera.pipeline import ProcessedFrame


def test_a_tiny_run_finds_the_flat_4k_page_and_reads_it() -> None:
    lines: list[str] = []
    summary = run_reading(
        ReadingOptions(conditions=("flat",), resolutions=("4k",), seeds=1,
                       text_sizes=(10.0,), plans=False, stitch_runs=1, jobs=1,
                       latency=False),
        out=lines.append)
    for key in ("cer", "plan_dimensions_read", "stitch_success", "silent_wrong_crops",
                "zoom_latency_ms", "page_found_rate", "blur_message_rate"):
        assert key in summary, key
    assert summary["page_found_rate"] == 1.0
    assert summary["silent_wrong_crops"] == 0
    cer = summary["cer"]["4k"]["10pt"]
    for view in ("track", "zoom"):
        assert isinstance(cer[view], float) and 0.0 <= cer[view] <= 1.0
    # 10 pt on a flat page seen by a 4K camera is easily read, on the track and zoomed.
    assert cer["track"] < 0.05 and cer["zoom"] < 0.05
    assert summary["blur_message_rate"]["false_alarm"] == 0.0
    # ...also seen after the same page steady (the sequence the clerk's camera sees).
    assert summary["blur_message_rate"]["false_alarm_in_sequence"] == 0.0
    assert summary["stitch_success"]["A2"] in ("0/1", "1/1")
    assert any(line.startswith("    flat") and "4k" in line for line in lines)
    assert any("no silent wrong crop" in line for line in lines)


def _frame(quad: np.ndarray | None, notices: list[Notice]) -> ProcessedFrame:
    return ProcessedFrame(np.zeros((4, 4, 3), np.uint8), quad, 1.0, True, notices)


def test_a_wrong_crop_is_silent_only_without_a_page_notice() -> None:
    truth = np.array([[100, 100], [500, 100], [500, 700], [100, 700]], np.float32)
    off = truth + np.array([[0, 0], [0, 0], [0, -200], [0, 0]], np.float32)
    right = judge(_frame(truth + 2, []), truth)
    assert right.found and not right.wrong
    silent = judge(_frame(off, [Notice(NoticeCode.OUT_OF_FOCUS)]), truth)
    assert silent.wrong and not silent.told and silent.blur_told
    told = judge(_frame(off, [Notice(NoticeCode.SHADOW_ON_PAGE)]), truth)
    assert told.wrong and told.told
    missing = judge(_frame(None, [Notice(NoticeCode.NO_PAGE)]), truth)
    assert not missing.found and not missing.wrong


def test_verdicts_say_misses_when_a_target_is_missed() -> None:
    summary = {
        "plan_dimensions_read": {"4k": {"zoom_flat": 0.5}},
        "cer": {"4k": {"8pt": {"zoom_flat": 0.0}}, "1080p": {"8pt": {"zoom_flat": 0.07}}},
        "silent_wrong_crops": 1, "frames": 10,
        "stitch_success": {"A2": "10/10", "A1": "8/10"},
        "zoom_latency_ms": 363.0, "zoom_latency_p90_ms": 639.0, "zoom_latency_load": [2.5, 2.7],
    }
    lines = verdicts(summary)
    assert sum("MISSES" in line for line in lines) == 5
    assert sum("— meets" in line for line in lines) == 2
    assert any("gesture to detail" in line and "363 ms (p90 639, load 2.5) — MISSES" in line
               for line in lines)
