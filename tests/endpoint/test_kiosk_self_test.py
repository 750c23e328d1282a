"""The kiosk's device self-test (issue 18; signaling/flow/kiosk_health.py, endpoint/static/kiosk/
self-test.js).

Socket level: a report is stored (one row per kiosk, shared by every process through the
database), pushed to the office's clerks and listed for the administrator; garbage, the wrong
role and oversized reports are refused and change nothing; the relay probe's events refuse
strangers. In real Chromium: a kiosk in a Chromium launched without the fake-device flag has no
camera for real (getUserMedia fails), reports "camera missing", still gives a ticket, and the
clerk's console and the admin page show it; the same kiosk in a Chromium with fake devices
reports every check OK and the warning goes.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from expert_console.chromium import CHROMIUM, CHROMIUM_ARGS
from signaling.store.kiosk_health_models import KioskSelfTest
from tests.expert_console.people import open_console, open_kiosk
from tests.support.browser import screenshot
from tests.support.service import LiveService
from tests.support.ui import assert_axe_clean

ACK_TIMEOUT = 10.0
OK = {"status": "ok", "code": "ok"}


def report(**changes: Any) -> dict[str, Any]:
    results = {"camera": OK, "microphone": OK, "speaker": OK, "relay": OK}
    results.update(changes)
    return {"trigger": "startup", "results": results}


async def rows(live: LiveService) -> list[tuple[int, bool, str]]:
    async with live.services.sessions() as session:
        found = await session.scalars(select(KioskSelfTest))
        return [(r.endpoint_id, r.ok, r.results) for r in found]


async def admin_health(live: LiveService, token: str) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{live.base_url}/api/admin/kiosk-health", headers={"authorization": f"Bearer {token}"}
        ) as response,
    ):
        return response.status, await response.json()


async def test_reports_are_stored_pushed_and_garbage_refused(live_service: LiveService) -> None:
    live = live_service
    kiosk = await live.connect_kiosk()
    clerk = await live.connect_user("sihteeri")
    expert = await live.connect_user("kela")
    pushed: list[dict[str, Any]] = []
    clerk.on("kiosk:self_test", lambda data: pushed.append(data))

    bad_cases: list[Any] = [
        "garbage",
        {},
        {"trigger": "startup"},
        {"trigger": "yearly", "results": report()["results"]},
        report(camera={"status": "broken"}),
        report(camera={"status": "fail", "code": "Camera Missing!"}),
        report(camera={"status": "fail", "code": "x" * 40}),
        report(relay={"status": "ok", "code": "ok", "ms": -1}),
        report(relay={"status": "ok", "code": "ok", "ms": 10**9}),
        report(camera={"status": "ok", "code": "ok", "extra": 1}),
        {**report(), "results": {**report()["results"], "printer": OK}},
        {**report(), "results": {k: v for k, v in report()["results"].items() if k != "relay"}},
        {**report(), "extra": True},
    ]
    for bad in bad_cases:
        answer = await kiosk.call("selftest:report", bad, timeout=ACK_TIMEOUT)
        assert not answer["ok"] and answer["error"]["code"] == "invalid", (bad, answer)
    # Too large: refused before it is even parsed.
    huge = report(camera={"status": "fail", "code": "camera_missing", "pad": "x" * 80_000})
    answer = await kiosk.call("selftest:report", huge, timeout=ACK_TIMEOUT)
    assert not answer["ok"] and answer["error"]["code"] == "too_large", answer
    # The wrong role: a person is no kiosk; a kiosk cannot read the office's list.
    for who, event, data in (
        (expert, "selftest:report", report()),
        (clerk, "selftest:report", report()),
        (kiosk, "selftest:office", {}),
        (expert, "selftest:office", {}),
        (expert, "selftest:relay_probe", {}),
    ):
        answer = await who.call(event, data, timeout=ACK_TIMEOUT)
        assert not answer["ok"] and answer["error"]["code"] == "forbidden", (event, answer)
    # The relay probe's follow-ups refuse a probe that is not this socket's.
    answer = await kiosk.call(
        "selftest:relay_answer", {"probe_id": "x" * 22, "sdp": "v=0"}, timeout=ACK_TIMEOUT
    )
    assert not answer["ok"] and answer["error"]["code"] == "not_found", answer
    answer = await kiosk.call(
        "selftest:relay_done", {"probe_id": "not a probe"}, timeout=ACK_TIMEOUT
    )
    assert not answer["ok"] and answer["error"]["code"] == "invalid", answer
    assert await rows(live) == [] and pushed == []  # nothing changed

    # A failing camera: stored, pushed to the office's clerk, listed for the administrator.
    failing = report(
        camera={"status": "fail", "code": "camera_missing", "ms": 12},
        speaker={"status": "ok", "code": "tone_played"},
    )
    answer = await kiosk.call("selftest:report", failing, timeout=ACK_TIMEOUT)
    assert answer["ok"] and answer["passed"] is False and answer["next_seconds"] == 3600, answer
    for _ in range(100):
        if pushed:
            break
        await asyncio.sleep(0.02)
    assert len(pushed) == 1
    view = pushed[0]
    assert view["endpoint_id"] == live.demo.endpoint_id and view["ok"] is False
    assert view["failures"] == [{"check": "camera", "code": "camera_missing"}]
    assert view["failing_since"] == view["tested_at"]
    [(endpoint_id, ok, stored)] = await rows(live)
    assert endpoint_id == live.demo.endpoint_id and ok is False
    assert json.loads(stored)["camera"] == {"status": "fail", "code": "camera_missing", "ms": 12}
    listed = await clerk.call("selftest:office", {}, timeout=ACK_TIMEOUT)
    assert listed["ok"] and [
        k["failures"] for k in listed["kiosks"] if k["endpoint_id"] == endpoint_id
    ] == [view["failures"]]

    status, body = await admin_health(live, await live.issue_token("admin"))
    assert status == 200
    kiosks = [k for office in body["offices"] for k in office["kiosks"]]
    assert [k["ok"] for k in kiosks if k["endpoint_id"] == endpoint_id] == [False]
    for user in ("sihteeri", "kela"):
        status, body = await admin_health(live, await live.issue_token(user))
        assert status == 403, body

    # Still failing at the next test: "failing since" stays; then all OK clears it.
    await kiosk.call("selftest:report", {**failing, "trigger": "hourly"}, timeout=ACK_TIMEOUT)
    listed = await clerk.call("selftest:office", {}, timeout=ACK_TIMEOUT)
    again = next(k for k in listed["kiosks"] if k["endpoint_id"] == endpoint_id)
    assert again["failing_since"] == view["failing_since"] and again["trigger"] == "hourly"
    answer = await kiosk.call("selftest:report", report(), timeout=ACK_TIMEOUT)
    assert answer["ok"]
    listed = await clerk.call("selftest:office", {}, timeout=ACK_TIMEOUT)
    healed = next(k for k in listed["kiosks"] if k["endpoint_id"] == endpoint_id)
    assert healed["ok"] is True and healed["failures"] == [] and healed["failing_since"] is None


# --- in Chromium -------------------------------------------------------------------------------

SELF_TEST_DONE = """() => {
  const st = window.__etapalvelu && window.__etapalvelu.selfTest;
  return Boolean(st && st.last && st.last.reported);
}"""


async def kiosk_self_test(person: Any) -> dict[str, Any]:
    await person.page.wait_for_function(SELF_TEST_DONE, timeout=30000)
    last: dict[str, Any] = await person.page.evaluate("() => window.__etapalvelu.selfTest.last")
    return last


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_kiosk_without_a_camera_tells_the_clerk_and_the_admin(
    browser: Any, live_service: LiveService
) -> None:
    from playwright.async_api import async_playwright

    live = live_service
    clerk = await open_console(browser, live, "/expert", "sihteeri", axe=True)
    admin = await open_console(browser, live, "/admin", "admin", axe=True)
    async with async_playwright() as pw:
        # Without the fake-device flag headless Chromium has no camera, microphone or sound
        # card: getUserMedia fails for real. (Permission prompts are still auto-accepted.)
        bare = await pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[a for a in CHROMIUM_ARGS if a != "--use-fake-device-for-media-stream"],
        )
        try:
            kiosk = await open_kiosk(bare, live)
            last = await kiosk_self_test(kiosk)
            results = last["results"]
            assert last["trigger"] == "startup"
            assert results["camera"]["status"] == "fail", results
            assert results["camera"]["code"] == "camera_missing", results
            assert results["microphone"]["code"] == "microphone_missing", results
            assert results["speaker"]["code"] == "speaker_missing", results
            assert results["relay"]["status"] == "ok", results  # the network is fine
            # The customer is not stopped: a ticket still comes.
            await kiosk.page.click("#authority-list button[data-authority=kela]")
            await kiosk.page.click("#service-language-list button[data-language=fin]")
            await kiosk.page.wait_for_selector("#screen-ticket:not([hidden])")
            await kiosk.page.click("#leave-queue")
            await kiosk.page.wait_for_selector("#screen-start:not([hidden])")
            kiosk.assert_no_errors()
            await kiosk.close()
        finally:
            await bare.close()

    # The clerk sees a warning for the kiosk, pushed while his console was open.
    warning = f"#kiosk-health-list li[data-endpoint='{live.demo.endpoint_id}']"
    await clerk.page.wait_for_selector(warning, timeout=15000)
    codes = await clerk.page.get_attribute(warning, "data-codes")
    assert codes is not None and "camera_missing" in codes.split()
    assert "Kamera: puuttuu" in (await clerk.page.text_content(warning) or "")
    await clerk.page.click("#language-switcher button[data-lang=en]")
    await clerk.page.wait_for_selector(f"{warning}:has-text('Camera: missing')")
    await screenshot(clerk.page, "clerk-kiosk-self-test-warning")
    await assert_axe_clean(clerk.page, "clerk with a kiosk warning")

    # The administrator: the kiosk's row highlighted in its office's list.
    await admin.page.click(".console-nav [data-view=endpoints]")
    row = f"#kiosk-health-list tr[data-endpoint='{live.demo.endpoint_id}']"
    await admin.page.wait_for_selector(f"{row}.broken-row", timeout=15000)
    assert "Kamera: puuttuu" in (await admin.page.text_content(row) or "")
    await screenshot(admin.page, "admin-kiosk-self-test")
    await assert_axe_clean(admin.page, "admin kiosk self-test")

    # The same kiosk in Chromium with fake devices: every check passes, the warning goes.
    kiosk = await open_kiosk(browser, live)
    last = await kiosk_self_test(kiosk)
    assert {name: r["status"] for name, r in last["results"].items()} == {
        "camera": "ok",
        "microphone": "ok",
        "speaker": "ok",
        "relay": "ok",
    }, last
    await clerk.page.wait_for_selector(warning, state="detached", timeout=15000)
    await clerk.page.wait_for_selector("#kiosk-health-list [data-testid=kiosk-health-ok]")
    await admin.page.click(".console-nav [data-view=live]")
    await admin.page.click(".console-nav [data-view=endpoints]")
    await admin.page.wait_for_selector(f"{row}[data-ok=true]:not(.broken-row)", timeout=15000)
    kiosk.assert_no_errors()
    clerk.assert_no_errors()
    admin.assert_no_errors()
    await kiosk.close()
    await clerk.close()
    await admin.close()


# --- parsers ------------------------------------------------------------------------------------

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=12,
)
CHECK = st.fixed_dictionaries(
    {"status": st.sampled_from(["ok", "fail", "unknown", "bad", ""]) | JSONISH},
    optional={
        "code": st.from_regex(r"[a-z][a-z_]{0,31}", fullmatch=True) | JSONISH,
        "ms": st.integers(-5, 700_000) | JSONISH,
    },
)


@settings(max_examples=80, deadline=None)
@given(
    st.fixed_dictionaries(
        {"trigger": st.sampled_from(["startup", "hourly", "manual", "never"]) | JSONISH},
        optional={
            "results": st.fixed_dictionaries(
                {},
                optional={
                    name: CHECK | JSONISH
                    for name in ("camera", "microphone", "speaker", "relay", "printer")
                },
            )
        },
    )
    | JSONISH
)
def test_the_report_parser_takes_only_whole_reports(payload: Any) -> None:
    """Whatever comes, the schema either refuses it or gives four well-formed checks."""
    from pydantic import ValidationError

    from signaling.flow.kiosk_health import CHECKS, ReportPayload, failures

    try:
        parsed = ReportPayload.model_validate(payload)
    except ValidationError:
        return
    results = parsed.results.model_dump(exclude_none=True)
    assert sorted(results) == sorted(CHECKS)
    assert all(r["status"] in ("ok", "fail", "unknown") for r in results.values())
    assert [f["check"] for f in failures(results)] == [
        name for name in CHECKS if results[name]["status"] == "fail"
    ]


def test_the_relay_sweep_leaves_a_probe_in_progress_alone() -> None:
    from signaling.flow.relay_probes import is_live_probe_room, probe_room_id

    room = probe_room_id(7, "abc-def_ghijklmnopqrs", now=1_000_000)
    assert room.startswith("selftest-7-1000000-")
    assert is_live_probe_room(room, now=1_000_005)
    assert not is_live_probe_room(room, now=1_000_100)  # a dead process's leftover
    for other in ("call-12", "selftest-", "selftest-7", "selftest-7-x-y", "preview-3"):
        assert not is_live_probe_room(other, now=1_000_005), other
