"""The home customer's device check tests TURN for real (issue 18): Chromium on the `/join/<token>`
page gathers a relayed candidate through a real coturn on 127.0.0.1 with the short-lived
credentials the service mints, and says so; with a wrong secret it says the credentials were
refused, with coturn down that the server was not reached, each in its language, and in both
cases lets the customer go on, since his direct path to the relay works."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.signaling.test_join import remote_appointment
from tests.support.service import make_live_service
from tests.turn_config.conftest import NEW_SECRET
from tests.turn_config.coturn_server import Coturn

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]

WRONG_SECRET = "not-the-coturn-secret-0123456789"


async def _checked(page: Any, run: int) -> dict[str, Any]:
    await page.wait_for_function(
        "(run) => window.__join && window.__join.checkRuns === run && window.__join.checksDone",
        arg=run,
        timeout=15000,
    )
    state: dict[str, Any] = await page.evaluate(
        "({checks: window.__join.checks, turn: window.__join.turn,"
        " pair: window.__join.relayPair, relay_error: window.__join.relayError})"
    )
    state["turn_text"] = await page.inner_text("[data-testid=check-turn]")
    state["advice"] = await page.inner_text("#check-advice")
    return state


async def test_device_check_allocates_through_coturn_and_says_why_not(
    coturn: Coturn, browser: Any, tmp_path: Path
) -> None:
    urls = coturn.urls()
    async with make_live_service(
        tmp_path / "service",
        turn_urls=[urls["UDP"], urls["TCP"]],
        turn_secrets=[NEW_SECRET],
        turn_credential_ttl=300,
    ) as live:
        _appointment_id, path = await remote_appointment(live)
        context = await browser.new_context(locale="fi-FI")
        try:
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{live.base_url}{path}")

            # 1. coturn up, the service's secret: a relayed address, "toimii".
            ok = await _checked(page, 1)
            assert ok["checks"]["relay"] == "ok" and ok["checks"]["turn"] == "ok", ok
            assert ok["turn_text"] == "toimii" and not ok["advice"], ok
            # The allocation was coturn's, for the credential minted for this join link
            # (user name "<expiry>:join-<link id>", signaling/flow/remote_customer.py).
            assert re.search(
                r"user <\d+:join-\d+>: incoming packet ALLOCATE processed, success", coturn.log()
            ), coturn.log()[-3000:]

            # 2. The service signs with a secret coturn does not know: refused, said in
            # Swedish; the relay is reached directly, so he may go on.
            live.services.settings.turn_secrets = [WRONG_SECRET]
            await page.click("#language-switcher button[lang=sv]")
            await page.click("#check-again")
            refused = await _checked(page, 2)
            assert refused["checks"]["relay"] == "ok", refused
            assert refused["checks"]["turn"] == "failed", refused
            assert refused["turn"]["reason"] == "refused", refused
            assert refused["turn_text"] == (
                "fungerar inte – servern godkände inte inloggningsuppgifterna"
            )
            assert "Du kan fortsätta till väntrummet" in refused["advice"]

            # 3. coturn down (the right secret again): not reached, said in English.
            live.services.settings.turn_secrets = [NEW_SECRET]
            coturn.stop()
            await page.click("#language-switcher button[lang=en]")
            await page.click("#check-again")
            down = await _checked(page, 3)
            assert down["checks"]["relay"] == "ok", down
            assert down["checks"]["turn"] == "failed", down
            assert down["turn"]["reason"] == "unreachable", down
            assert down["turn_text"] == "does not work – the server could not be reached"
            assert "You can continue to the waiting room" in down["advice"]
            # Not blocked: he enters the waiting room.
            assert await page.is_enabled("#continue")
            await page.click("#continue")
            await page.wait_for_selector("#view-waiting:not([hidden])", timeout=10000)
            assert errors == []
        finally:
            await context.close()
