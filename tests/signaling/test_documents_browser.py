"""A document from a kiosk page in Chromium to a console page and back, through the service.

The two pages are minimal hosts of the real panel (/static/common/js/document-panel.js) on
the service's own origin; sockets, HTTP transfer, crypto and the service log are all real.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from tests.signaling.document_support import start_call
from tests.support.browser import screenshot
from tests.support.service import LiveService

pytestmark = pytest.mark.browser

HOST_PAGE = """<!doctype html><html lang="en"><meta charset="utf-8"><title>documents</title>
<script src="/static/vendor/socket.io.min.js"></script>
<div id="mount"></div>
<script type="module">
import { mountDocumentPanel } from "/static/common/js/document-panel.js";
import { missingKeys } from "/static/common/js/i18n.js";
const params = __PARAMS__;
const socket = io({ auth: params.auth, transports: ["websocket"] });
socket.on("connect", () => {
  if (window.panel) return;
  window.panel = mountDocumentPanel(document.getElementById("mount"),
    { socket, call: { id: params.callId }, role: params.role });
  window.panel.ready.then(() => { window.ready = true; });
});
window.missingKeys = missingKeys;
document.addEventListener("document-received", (e) => {
  (window.received = window.received || []).push(e.detail);
});
</script></html>"""

BLOB_SHA256 = """async (sha) => {
  const item = document.querySelector(`[data-testid=documents-item][data-sha256="${sha}"]`);
  const link = item.querySelector("a[download]");
  const url = link ? link.href : null;
  if (!url) return null;
  const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}"""


async def open_host(browser: Any, live: LiveService, call_id: int, auth: dict[str, Any],
                    role: str) -> Any:
    # The host page is this test's own inline module, which the service's Content Security
    # Policy (script-src 'self') rightly refuses; the product's pages have no inline script.
    context = await browser.new_context(bypass_csp=True)
    page = await context.new_page()
    errors: list[str] = []
    console: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda message: console.append(message.text))
    page.errors = errors

    # A page of the service itself first, so the host page below has the service's origin
    # (a routed or data: page would be "public" and Chromium blocks it from loopback).
    await page.goto(f"{live.base_url}/")
    params = json.dumps({"auth": auth, "callId": call_id, "role": role})
    await page.set_content(HOST_PAGE.replace("__PARAMS__", params))
    try:
        await page.wait_for_function("() => window.ready === true", timeout=15000)
    except Exception as exc:
        raise AssertionError(f"panel did not come up: {errors} {console}") from exc
    return page


async def test_kiosk_to_console_and_back(browser: Any, live_service: LiveService) -> None:
    call = await start_call(live_service)
    kiosk = await open_host(browser, live_service, call.call_id, live_service.kiosk_auth,
                            "customer")
    token = await live_service.issue_token("kela")
    expert = await open_host(browser, live_service, call.call_id, {"token": token}, "expert")
    # Both see both safety codes, and each sees the other's code as the other computes it.
    await kiosk.wait_for_function(
        "() => document.querySelectorAll('[data-testid=documents-codes] li').length === 2")
    kiosk_codes = await kiosk.locator("[data-testid=documents-codes] code").all_text_contents()
    expert_codes = await expert.locator("[data-testid=documents-codes] code").all_text_contents()
    assert sorted(kiosk_codes) == sorted(expert_codes) and kiosk_codes[0] != kiosk_codes[1]

    pdf = b"%PDF-1.4\n" + hashlib.sha256(b"x").digest() * 40000  # ~1.3 MB
    digest = hashlib.sha256(pdf).hexdigest()
    await kiosk.set_input_files("[data-testid=documents-file]", files=[
        {"name": "todistus.pdf", "mimeType": "application/pdf", "buffer": pdf}])
    await kiosk.click("[data-testid=documents-send]")
    item = expert.locator(f"[data-testid=documents-item][data-sha256='{digest}']")
    try:
        await item.wait_for(timeout=20000)
    except Exception as exc:
        raise AssertionError(f"not received: kiosk {await kiosk.inner_text('#mount')!r} "
                             f"expert {await expert.inner_text('#mount')!r}") from exc
    assert "todistus.pdf" in await item.inner_text()
    await item.locator("[data-testid=documents-verified]").wait_for()
    assert await expert.evaluate(BLOB_SHA256, digest) == digest  # the saved file, byte for byte
    await kiosk.locator("[data-testid=documents-sent] .documents-delivery[data-verdict=received]"
                        ).wait_for(timeout=10000)

    png = b"\x89PNG\r\n\x1a\n" + hashlib.sha256(b"y").digest() * 3000
    png_digest = hashlib.sha256(png).hexdigest()
    await expert.set_input_files("[data-testid=documents-file]", files=[
        {"name": "paatos.png", "mimeType": "image/png", "buffer": png}])
    await expert.click("[data-testid=documents-send]")
    back = kiosk.locator(f"[data-testid=documents-item][data-sha256='{png_digest}']")
    await back.wait_for(timeout=20000)
    # The kiosk views and prints; it has no save link.
    assert await back.get_by_role("button").all_text_contents() == ["Näytä", "Tulosta"]
    received = await kiosk.evaluate("window.received")
    assert [(r["sha256"], r["size"], r["type"]) for r in received] == [
        (png_digest, len(png), "image/png")]
    await screenshot(kiosk, "documents-kiosk-received")
    await screenshot(expert, "documents-console-received")

    from signaling.records.service_log import documents_of_call

    async with live_service.services.sessions() as session:
        logged = await documents_of_call(session, call.call_id)
    assert [(d["sha256"], d["verdict"]) for d in logged] == [(digest, "received"),
                                                              (png_digest, "received")]
    assert await kiosk.evaluate("window.missingKeys()") == []
    assert kiosk.errors == [] and expert.errors == []


async def test_disallowed_file_is_refused_at_the_sender(browser: Any,
                                                        live_service: LiveService) -> None:
    call = await start_call(live_service)
    kiosk = await open_host(browser, live_service, call.call_id, live_service.kiosk_auth,
                            "customer")
    token = await live_service.issue_token("kela")
    await open_host(browser, live_service, call.call_id, {"token": token}, "expert")
    await kiosk.wait_for_function(
        "() => document.querySelectorAll('[data-testid=documents-codes] li').length === 2")
    await kiosk.set_input_files("[data-testid=documents-file]", files=[
        {"name": "ohjelma.exe", "mimeType": "application/pdf", "buffer": b"MZ" + bytes(500)}])
    await kiosk.click("[data-testid=documents-send]")
    status = kiosk.locator(".documents-status")
    await status.filter(has_text="ei ole sallittu").wait_for(timeout=5000)  # Finnish UI
    assert await kiosk.locator("[data-testid=documents-sent] li").count() == 0


CANCEL_DURING_UPLOAD = """async () => {
  const bytes = new Uint8Array(12 * 1024 * 1024);
  bytes.set([0x25, 0x50, 0x44, 0x46, 0x2d]);  // %PDF-
  const controller = new AbortController();
  const phases = new Set();
  try {
    await window.panel.channel.send({ name: "big.pdf", bytes }, {
      signal: controller.signal,
      onProgress: (p) => { phases.add(p.phase); if (p.phase === "upload") controller.abort(); },
    });
    return { outcome: "sent" };
  } catch (error) {
    return { outcome: error.code, phases: [...phases] };
  }
}"""


async def test_cancel_and_receive_after_reconnect(browser: Any,
                                                  live_service: LiveService) -> None:
    from sqlalchemy import select

    from signaling.store.flow_models import DocumentTransfer

    call = await start_call(live_service)
    kiosk = await open_host(browser, live_service, call.call_id, live_service.kiosk_auth,
                            "customer")
    token = await live_service.issue_token("kela")
    expert = await open_host(browser, live_service, call.call_id, {"token": token}, "expert")
    await kiosk.wait_for_function(
        "() => document.querySelectorAll('[data-testid=documents-codes] li').length === 2")

    # Cancel while uploading: the sender stops, the server drops the ciphertext.
    result = await kiosk.evaluate(CANCEL_DURING_UPLOAD)
    assert result == {"outcome": "cancelled", "phases": ["encrypt", "upload"]}
    async def transfers() -> list[str]:
        async with live_service.services.sessions() as session:
            return list((await session.scalars(select(DocumentTransfer.id))).all())

    for _ in range(50):
        if not await transfers():
            break
        await kiosk.wait_for_timeout(100)
    assert await transfers() == []
    assert list((live_service.settings.data_dir / "documents").glob("*.bin")) == []

    # The console drops its connection; a document sent meanwhile arrives after it reconnects.
    await expert.evaluate("window.panel.channel.socket.disconnect()")
    pdf = b"%PDF-1.4\n" + hashlib.sha256(b"z").digest() * 1000
    await kiosk.set_input_files("[data-testid=documents-file]", files=[
        {"name": "liite.pdf", "mimeType": "application/pdf", "buffer": pdf}])
    await kiosk.click("[data-testid=documents-send]")
    await kiosk.locator("[data-testid=documents-sent] li").wait_for(timeout=10000)
    await expert.evaluate("window.panel.channel.socket.connect()")
    digest = hashlib.sha256(pdf).hexdigest()
    await expert.locator(f"[data-testid=documents-item][data-sha256='{digest}']").wait_for(
        timeout=20000)
    assert kiosk.errors == [] and expert.errors == []


SIGN_IN_BROWSER = """async (userId) => {
  const dc = await import("/static/common/js/document-crypto.js");
  const key = await dc.ensureSigningKeyRegistered(window.panel.channel.socket, userId);
  const again = await dc.loadOrCreateSigningKey(userId);      // the same key from IndexedDB
  let extractable = true;
  try { await crypto.subtle.exportKey("pkcs8", again.privateKey); }
  catch { extractable = false; }
  const record = { call_id: 1, documents: [{ sha256: "ab".repeat(32), size: 10 }],
                   expert: "Kaisa", outcome: "resolved" };
  return { publicKey: key.publicKeyB64u, samePublic: again.publicKeyB64u === key.publicKeyB64u,
           created: key.created, extractable, record,
           signature: await dc.signRecord(record, again.privateKey) };
}"""


async def test_expert_signs_a_record_in_the_browser(browser: Any,
                                                    live_service: LiveService) -> None:
    from signaling.records.record_signing import RecordSignatureError, verify_record
    from signaling.store.models import User

    call = await start_call(live_service)
    token = await live_service.issue_token("kela")
    expert = await open_host(browser, live_service, call.call_id, {"token": token}, "expert")
    user_id = live_service.demo.user_ids["kela"]
    signed = await expert.evaluate(SIGN_IN_BROWSER, user_id)
    assert signed["created"] and signed["samePublic"] and not signed["extractable"]
    async with live_service.services.sessions() as session:
        user = await session.get(User, user_id)
        assert user is not None and user.signing_public_key == signed["publicKey"]
    # The server-side check (what record:file and `admin log verify` use) accepts it ...
    verify_record(signed["record"], signed["signature"], user.signing_public_key)
    # ... and catches the record changed after signing.
    signed["record"]["outcome"] = "pending"
    with pytest.raises(RecordSignatureError):
        verify_record(signed["record"], signed["signature"], user.signing_public_key)
