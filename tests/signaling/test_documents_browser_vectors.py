"""The document vectors run in real Chromium against signaling/static/js/document-crypto.js.

A tiny aiohttp server on loopback serves the module and the vector files; the page imports the
module and runs every vector, returning what it saw. Python asserts on that result, so a
mismatch names the vector.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from tests.support.net import LOOPBACK, free_port

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors" / "documents"

pytestmark = pytest.mark.browser

PAGE = """<!doctype html><meta charset="utf-8"><title>vectors</title>
<script type="module">
import * as dc from "/js/document-crypto.js";
window.dc = dc;
window.ready = true;
</script>"""


@pytest_asyncio.fixture
async def vector_server() -> AsyncIterator[str]:
    app = web.Application()

    async def page(_request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app.router.add_get("/", page)
    app.router.add_static("/js/", ROOT / "signaling" / "static" / "js")
    app.router.add_static("/vectors/", VECTORS)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, LOOPBACK, port)
    await site.start()
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        await runner.cleanup()


RUN_VECTORS = """async (names) => {
  const dc = window.dc;
  const get = async (n) => (await fetch(`/vectors/${n}.json`)).json();
  const out = {encrypt: {}, refuse: {}, canonical: {}, canonicalInvalid: {}, record: {}};
  for (const name of names) {
    const v = await get(name);
    const sender = await dc.importCallKey(v.suite, dc.fromHex(v.sender_private_pkcs8),
                                          dc.fromHex(v.sender_public));
    const ct = await dc.encryptDocument(dc.fromHex(v.plaintext), v.metadata, sender,
      v.recipients.map((r) => dc.fromHex(r.public)),
      {chunkSize: v.chunk_size, fileKey: dc.fromHex(v.file_key), fileId: dc.fromHex(v.file_id)});
    const result = {ciphertextEqual: dc.hex(ct) === v.ciphertext,
                    senderFingerprint: await dc.fingerprint(v.suite, sender.publicBytes),
                    recipients: []};
    for (const r of v.recipients) {
      const me = await dc.importCallKey(v.suite, dc.fromHex(r.private_pkcs8), dc.fromHex(r.public));
      const doc = await dc.decryptDocument(dc.fromHex(v.ciphertext), me, {maxBytes: 1 << 20});
      result.recipients.push({plaintextEqual: dc.hex(doc.content) === v.plaintext,
        metadata: doc.metadata, senderFingerprint: doc.senderFingerprint,
        fingerprint: await dc.fingerprint(v.suite, me.publicBytes)});
    }
    out.encrypt[name] = result;
  }
  for (const c of (await get("refuse")).cases) {
    const me = await dc.importCallKey(c.recipient_suite, dc.fromHex(c.recipient_private_pkcs8),
                                      dc.fromHex(c.recipient_public));
    try {
      await dc.decryptDocument(dc.fromHex(c.ciphertext), me, {maxBytes: c.max_bytes});
      out.refuse[c.name] = "accepted";
    } catch (e) {
      out.refuse[c.name] = e.code || `not a DocumentError: ${e}`;
    }
  }
  const canon = await get("canonical-json");
  for (const c of canon.valid) {
    out.canonical[c.input] = dc.canonicalJson(dc.parseStrictJson(c.input));
  }
  for (const c of canon.invalid) {
    try {
      dc.canonicalJson(dc.parseStrictJson(c.input));
      out.canonicalInvalid[c.why] = "accepted";
    } catch (e) { out.canonicalInvalid[c.why] = "refused"; }
  }
  const rv = await get("record-signature");
  const key = await crypto.subtle.importKey("pkcs8", dc.fromHex(rv.private_pkcs8),
                                            {name: "Ed25519"}, false, ["sign"]);
  out.record.canonical = dc.canonicalJson(rv.record);
  out.record.signature = await dc.signRecord(rv.record, key);
  out.record.verifies = await dc.verifyRecord(JSON.stringify(rv.record, null, 2), rv.signature,
                                              rv.public_key);
  out.record.refuse = {};
  for (const c of rv.refuse) {
    try {
      await dc.verifyRecord(c.record, c.signature, c.public_key);
      out.record.refuse[c.name] = "accepted";
    } catch (e) { out.record.refuse[c.name] = e.message; }
  }
  return out;
}"""


async def test_vectors_in_chromium(browser: Any, vector_server: str) -> None:
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(vector_server + "/")
    await page.wait_for_function("() => window.ready === true")
    names = sorted(p.stem for p in VECTORS.glob("encrypt-*.json"))
    seen = await page.evaluate(RUN_VECTORS, names)
    assert not errors

    for name in names:
        v = json.loads((VECTORS / f"{name}.json").read_text())
        result = seen["encrypt"][name]
        assert result["ciphertextEqual"], f"{name}: browser ciphertext differs from Python's"
        assert result["senderFingerprint"] == v["sender_fingerprint"]
        for got, want in zip(result["recipients"], v["recipients"], strict=True):
            assert got["plaintextEqual"], name
            assert got["metadata"] == v["metadata"]
            assert got["fingerprint"] == want["fingerprint"]
            assert got["senderFingerprint"] == v["sender_fingerprint"]

    cases = json.loads((VECTORS / "refuse.json").read_text())["cases"]
    assert {c["name"]: c["error"] for c in cases} == seen["refuse"]

    canon = json.loads((VECTORS / "canonical-json.json").read_text())
    assert {c["input"]: c["canonical"] for c in canon["valid"]} == seen["canonical"]
    assert set(seen["canonicalInvalid"].values()) == {"refused"}, seen["canonicalInvalid"]

    rv = json.loads((VECTORS / "record-signature.json").read_text())
    assert seen["record"]["canonical"] == rv["canonical"]
    assert seen["record"]["signature"] == rv["signature"]  # Ed25519 is deterministic
    assert seen["record"]["verifies"] is True
    for name, message in seen["record"]["refuse"].items():
        assert message != "accepted", name
        assert "signature" in message, (name, message)
