"""The kiosk's call screen as a customer meets it, in real Chromium with the real service.

A kiosk page and the Kela expert's console are in a call (Chromium's fake camera, media through
the in-process relay). The expert sends a PDF and a PNG through the documents panel of his
console (its file picker: the real browser-side encryption, upload and service log). On the
kiosk, at 1920×1080, 1280×800 and 390×844:

- End call, the help button, the expert's picture and the document notice are inside the
  viewport without scrolling; nothing overflows sideways; the customer's own picture covers
  neither the expert nor an interpreter (who sits beside the expert);
- there is no file picker, no type/size note, no download or blob: link, no frame anywhere;
  the safety code comes on request, in large proportional digits;
- View opens the kiosk's own viewer: the PDF drawn by PDF.js into canvases (pixels checked),
  the PNG in an <img>; Print builds a print-only copy and calls window.print(); closing the
  viewer, and the end of the call, clear it all;
- the keyboard alone reaches End call and View; a language switch leaves no text in the old
  language (the safety-code labels included); axe-core finds nothing critical or serious in
  any of these states.

Screenshots of every state go to artifacts/screenshots/kiosk-screen-*.png.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from tests.endpoint.test_kiosk_lifecycle import in_call
from tests.support.browser import screenshot
from tests.support.service import LiveService
from tests.support.ui import (
    AXE,
    VIEWPORTS,
    assert_in_viewport,
    page_overflows_horizontally,
    strings_of,
    texts_in_language,
)
from tests.support.ui import assert_axe_clean as ui_assert_axe_clean

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
STRING_FILES = [
    ROOT / "endpoint" / "static" / "kiosk" / "strings.js",
    ROOT / "signaling" / "static" / "js" / "i18n.js",
    ROOT / "signaling" / "static" / "js" / "document-panel.js",
    ROOT / "signaling" / "static" / "js" / "doc-viewer.js",
]
CONTROLS = ["#end-call", "#secretary-button", "#tile-expert"]
NOTICE = "#documents [data-testid=documents-item]"


def tiny_pdf(pages: int = 2) -> bytes:
    """A real PDF of `pages` pages, each with dark filled rectangles (no fonts needed)."""
    objects: list[bytes] = []
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode())
    for i in range(pages):
        stream = (
            f"0.1 0.2 0.5 rg 60 {500 - 40 * i} 420 200 re f "
            f"0 0 0 rg 60 120 {200 + 60 * i} 40 re f 0.7 0 0 rg 380 120 150 150 re f"
        ).encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
            f"/Contents {4 + 2 * i} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def tiny_png(width: int = 240, height: int = 160) -> bytes:
    """A real PNG: a blue field with a red band."""
    rows = b""
    for y in range(height):
        pixel = b"\xc0\x10\x10" if height // 3 < y < height // 2 else b"\x10\x40\xa0"
        rows += b"\x00" + pixel * width
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


NON_BLANK_CANVASES = """(selector) => [...document.querySelectorAll(selector)].map((c) => {
  const ctx = c.getContext("2d");
  const data = ctx.getImageData(0, 0, c.width, c.height).data;
  let dark = 0;
  for (let i = 0; i < data.length; i += 4 * 97) {
    if (data[i] + data[i + 1] + data[i + 2] < 600) dark++;
  }
  return {width: c.width, height: c.height, dark};
})"""

NO_SAVE_PATHS = """() => ({
  downloads: document.querySelectorAll("a[download]").length,
  blobLinks: [...document.querySelectorAll("a[href]")].filter(
      (a) => a.getAttribute("href").startsWith("blob:")).length,
  frames: document.querySelectorAll("iframe, embed, object").length,
  pickers: document.querySelectorAll("input[type=file]").length,
})"""

# Boxes of the pictures: the customer's own must overlap neither the expert nor the interpreter.
OVERLAPS = """() => {
  const box = (id) => document.getElementById(id).getBoundingClientRect();
  const hit = (a, b) => a.left < b.right - 1 && b.left < a.right - 1
                        && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const self = box("tile-self"), expert = box("tile-expert");
  const interpreter = document.getElementById("tile-interpreter").hidden
      ? null : box("tile-interpreter");
  const label = document.querySelector("#tile-expert .tile-label").getBoundingClientRect();
  return {
    selfOnExpert: hit(self, expert),
    selfOnInterpreter: interpreter ? hit(self, interpreter) : false,
    selfOnName: hit(self, document.getElementById("call-expert-name").getBoundingClientRect()),
    interpreterOnExpert: interpreter ? hit(interpreter, expert) : false,
    interpreterOnLabel: interpreter ? hit(interpreter, label) : false,
    sideBySide: interpreter ? Math.abs(interpreter.top - expert.top) < 2 : null,
  };
}"""


async def assert_axe_clean(page: Any, state: str) -> None:
    """tests/support/ui.py's check, with axe-core put into the page through DevTools first:
    ui.py adds it as an inline <script>, which the kiosk's real Content Security Policy
    (script-src 'self') refuses, and this test keeps that policy on (PDF.js must work under
    it)."""
    if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
    await ui_assert_axe_clean(page, state)


async def send_from_expert(expert_page: Any, name: str, mime: str, content: bytes) -> None:
    """The expert sends a document through his console's documents panel."""
    await expert_page.wait_for_selector("[data-testid=documents-recipients] input:checked",
                                        state="attached", timeout=20000)
    await expert_page.set_input_files(
        "[data-testid=documents-file]", files=[{"name": name, "mimeType": mime, "buffer": content}]
    )
    await expert_page.click("[data-testid=documents-send]")


async def check_sizes(page: Any, state: str, selectors: list[str]) -> None:
    """Every viewport: the controls in sight without scrolling, no sideways overflow, axe
    clean, a screenshot; back to 1280×800 afterwards."""
    for name, size in VIEWPORTS.items():
        await page.set_viewport_size(size)
        await page.wait_for_timeout(150)
        await assert_in_viewport(page, selectors, f"{state} {name}")
        assert not await page_overflows_horizontally(page), f"{state} {name} overflows"
        overlaps = await page.evaluate(OVERLAPS)
        if any(v for k, v in overlaps.items() if k != "sideBySide"):
            await screenshot(page, f"kiosk-screen-{state}-{name}-FAILED")
        assert not any(v for k, v in overlaps.items() if k != "sideBySide"), (state, name, overlaps)
        heights = await page.eval_on_selector_all(
            "#screen-call button:not([hidden]), .kiosk-footer button, .kiosk-header button",
            "els => els.filter(e => e.offsetParent).map(e => [e.id || e.textContent, "
            "e.getBoundingClientRect().height, e.getBoundingClientRect().width])",
        )
        small = [h for h in heights if h[1] < 48 or h[2] < 48]
        assert not small, (state, name, small)
        await assert_axe_clean(page, f"{state} {name}")
        await screenshot(page, f"kiosk-screen-{state}-{name}")
    await page.set_viewport_size(VIEWPORTS["1280x800"])
    await page.wait_for_timeout(150)


# The language switcher names each language in itself, whatever the page's language.
OWN_NAMES = {"Suomi", "Svenska", "English"}


async def old_texts(page: Any, tables: dict[str, dict[str, str]], lang: str) -> list[str]:
    return [text for text in await texts_in_language(page, tables, lang) if text not in OWN_NAMES]


async def tab_to(page: Any, selector: str, limit: int = 25) -> int:
    """Press Tab until `selector` has the focus; how many presses it took."""
    for presses in range(1, limit + 1):
        await page.keyboard.press("Tab")
        if await page.evaluate(
            "(sel) => document.activeElement && document.activeElement.matches(sel)", selector
        ):
            return presses
    raise AssertionError(f"{selector} not reached with {limit} Tab presses")


async def test_kiosk_call_screen(browser: Any, live_service: LiveService) -> None:
    kiosk, expert = await in_call(browser, live_service)
    page = kiosk.page
    await page.wait_for_selector("#document-panel-mount .document-panel")

    # -- the call, nothing received yet -------------------------------------------------------
    assert await page.evaluate(NO_SAVE_PATHS) == {
        "downloads": 0, "blobLinks": 0, "frames": 0, "pickers": 0}
    assert await page.locator("#documents .documents-hint").count() == 0
    assert await page.text_content("#end-call") == "Lopeta puhelu"
    await check_sizes(page, "call", CONTROLS)

    # An interpreter joins (the kiosk's own participants handler, fed the list it would get):
    # he sits beside the expert, and the customer's picture covers neither.
    real = await page.evaluate("() => window.__etapalvelu.kiosk.participants")
    call_id = await page.evaluate("() => window.__etapalvelu.kiosk.call.id")
    with_interpreter = [*real, {"participant_id": "user-999", "role": "interpreter",
                                "name": "Tulkki Testinen", "connected": True,
                                "sign_language": True}]
    feed = """([callId, participants]) => {
      const socket = window.__etapalvelu.kiosk.socket;
      for (const fn of socket.listeners("call:participants")) fn({call_id: callId, participants});
    }"""
    await page.evaluate(feed, [call_id, with_interpreter])
    await page.wait_for_selector("#tile-interpreter:not([hidden])")
    for name, size in VIEWPORTS.items():
        await page.set_viewport_size(size)
        await page.wait_for_timeout(150)
        overlaps = await page.evaluate(OVERLAPS)
        assert overlaps["sideBySide"] is True, (name, overlaps)
        assert not any(v for k, v in overlaps.items() if k != "sideBySide"), (name, overlaps)
        await assert_in_viewport(page, [*CONTROLS, "#tile-interpreter"], f"interpreter {name}")
        assert not await page_overflows_horizontally(page)
        await screenshot(page, f"kiosk-screen-interpreter-{name}")
    await page.set_viewport_size(VIEWPORTS["1280x800"])
    await page.evaluate(feed, [call_id, real])
    await page.wait_for_selector("#tile-interpreter", state="hidden")

    # -- the safety code, on request, large ---------------------------------------------------
    toggle = "#documents [data-testid=documents-codes-toggle]"
    assert await page.text_content(toggle) == "Näytä turvakoodi"
    assert not await page.is_visible("#documents [data-testid=documents-codes]")
    await page.click(toggle)
    await page.wait_for_function(
        "() => document.querySelectorAll("
        "'#documents [data-testid=documents-codes] li').length >= 2")
    code_style = await page.eval_on_selector(
        "#documents [data-testid=documents-codes] code",
        "c => ({size: parseFloat(getComputedStyle(c).fontSize), "
        "family: getComputedStyle(c).fontFamily})",
    )
    assert code_style["size"] >= 28, code_style
    assert "mono" not in code_style["family"], code_style
    await check_sizes(page, "codes", [*CONTROLS, "#documents [data-testid=documents-codes] code"])

    # -- a PDF arrives: the large notice ------------------------------------------------------
    pdf = tiny_pdf(2)
    pdf_sha = hashlib.sha256(pdf).hexdigest()
    await send_from_expert(expert.page, "paatos.pdf", "application/pdf", pdf)
    item = f"{NOTICE}[data-sha256='{pdf_sha}']"
    await page.wait_for_selector(item, timeout=30000)
    await page.wait_for_selector(f"{item} [data-testid=documents-verified]")
    await page.click(toggle)  # codes away again, the notice in front
    assert await page.text_content(f"{item} .documents-notice-title") == "Sait asiakirjan"
    assert await page.locator(f"{item} button").all_text_contents() == ["Näytä", "Tulosta"]
    assert await page.evaluate(NO_SAVE_PATHS) == {
        "downloads": 0, "blobLinks": 0, "frames": 0, "pickers": 0}
    await check_sizes(page, "document", [*CONTROLS, item, f"{item} [data-testid=documents-view]",
                                         f"{item} [data-testid=documents-print]"])

    # -- keyboard only: End call (asked, kept) and View ----------------------------------------
    await page.evaluate("() => document.activeElement && document.activeElement.blur()")
    await page.focus("#call-title")
    presses = await tab_to(page, "#end-call")
    print(f"Tab presses to End call: {presses}")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#end-call-dialog[open]")
    assert await page.evaluate("document.activeElement.id") == "end-call-no"
    await assert_axe_clean(page, "end-call confirm")
    await screenshot(page, "kiosk-screen-end-confirm")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#end-call-dialog", state="hidden")
    assert await page.is_visible("#screen-call")
    presses = await tab_to(page, f"{item} [data-testid=documents-view]")
    print(f"Tab presses from End call to View: {presses}")
    await page.keyboard.press("Enter")

    # -- the own viewer: PDF.js into canvas ----------------------------------------------------
    await page.wait_for_selector("dialog.doc-viewer[open] canvas[data-page='2']", timeout=20000)
    await page.wait_for_function(
        "() => window.__etapalvelu.kiosk.documentPanel.panel.viewer", timeout=5000)
    await page.evaluate("window.__etapalvelu.kiosk.documentPanel.panel.viewer.ready")
    drawn = await page.evaluate(NON_BLANK_CANVASES, "dialog.doc-viewer canvas")
    print(f"viewer canvases: {drawn}")
    assert len(drawn) == 2 and all(c["dark"] > 50 and c["width"] > 300 for c in drawn), drawn
    assert await page.evaluate(NO_SAVE_PATHS) == {
        "downloads": 0, "blobLinks": 0, "frames": 0, "pickers": 0}
    assert await page.evaluate("document.activeElement.dataset.testid") == "viewer-close"
    assert await page.is_visible("dialog.doc-viewer [data-testid=viewer-print]")
    for name, size in VIEWPORTS.items():
        await page.set_viewport_size(size)
        await page.wait_for_timeout(150)
        await assert_in_viewport(page, ["[data-testid=viewer-print]", "[data-testid=viewer-close]"],
                                 f"viewer {name}")
        assert not await page_overflows_horizontally(page)
        await assert_axe_clean(page, f"viewer {name}")
        await screenshot(page, f"kiosk-screen-viewer-pdf-{name}")
    await page.set_viewport_size(VIEWPORTS["1280x800"])

    # Print: a print-only copy of the pages, then window.print(); the copy goes afterwards.
    await page.evaluate(
        """() => { window.__printed = []; window.print = () => {
             const area = document.querySelector('.doc-print-area');
             const canvases = area ? [...area.querySelectorAll('canvas')] : [];
             window.__printed.push({
               inBody: !!area && area.parentElement === document.body,
               pages: canvases.length,
               widths: canvases.map((c) => c.width),
               printOnly: area ? getComputedStyle(area).display : null,
             });
           }; }"""
    )
    await page.click("dialog.doc-viewer [data-testid=viewer-print]")
    await page.wait_for_function("() => window.__printed.length === 1", timeout=15000)
    printed = (await page.evaluate("window.__printed"))[0]
    print(f"print copy: {printed}")
    assert printed["inBody"] and printed["pages"] == 2 and printed["printOnly"] == "none"
    assert min(printed["widths"]) >= 1200  # 150 dpi
    await page.wait_for_function("() => !document.querySelector('.doc-print-area')")

    # Closing clears it: no viewer, no canvas; the focus is back on View.
    await page.keyboard.press("Escape")
    await page.wait_for_selector("dialog.doc-viewer", state="detached")
    assert await page.evaluate("window.__etapalvelu.openViewers()") == 0
    assert await page.locator("canvas").count() == 0
    assert await page.evaluate("document.activeElement.dataset.testid") == "documents-view"

    # -- a PNG arrives; Print from the notice opens it and prints it ----------------------------
    png = tiny_png()
    png_sha = hashlib.sha256(png).hexdigest()
    await send_from_expert(expert.page, "kuva.png", "image/png", png)
    image_item = f"{NOTICE}[data-sha256='{png_sha}']"
    await page.wait_for_selector(image_item, timeout=30000)
    first = await page.get_attribute(f"{NOTICE} >> nth=0", "data-sha256")
    assert first == png_sha  # the newest first
    await assert_in_viewport(page, [image_item], "second document")
    await page.click(f"{image_item} [data-testid=documents-print]")
    await page.wait_for_function("() => window.__printed.length === 2", timeout=15000)
    image = await page.eval_on_selector(
        "dialog.doc-viewer img", "i => ({w: i.naturalWidth, h: i.naturalHeight, src: i.src})")
    assert (image["w"], image["h"]) == (240, 160), image
    assert image["src"].startswith("blob:")  # an <img> only: never a link or a navigation
    await screenshot(page, "kiosk-screen-viewer-png-1280x800")
    await assert_axe_clean(page, "viewer png")
    await page.click("dialog.doc-viewer [data-testid=viewer-close]")
    await page.wait_for_selector("dialog.doc-viewer", state="detached")
    revoked = await page.evaluate(
        "(src) => fetch(src).then(() => 'readable', () => 'revoked')", image["src"])
    assert revoked == "revoked"

    # -- a language switch mid-call leaves nothing Finnish ------------------------------------
    tables: dict[str, dict[str, str]] = {}
    for path in STRING_FILES:
        for lang, table in strings_of(path).items():
            tables.setdefault(lang, {}).update(table)
    await page.click(toggle)  # the codes shown: their labels must follow too
    await page.wait_for_selector("#documents [data-testid=documents-codes]")
    for old, new in (("fi", "sv"), ("sv", "en")):
        await page.click(f"#language-switcher button[data-lang={new}]")
        await page.wait_for_timeout(200)
        left = await old_texts(page, tables, old)
        assert left == [], f"{old} texts left after switching to {new}: {left}"
        await assert_axe_clean(page, f"language {new}")
        await screenshot(page, f"kiosk-screen-language-{new}-1280x800")
    assert await page.text_content(f"{item} .documents-notice-title") == "You received a document"
    labels = await page.locator("#documents [data-testid=documents-codes] .who").all_text_contents()
    assert "Your code: " in labels, labels
    assert await page.text_content(toggle) == "Hide safety code"
    assert await page.text_content("#end-call") == "End call"
    # The viewer opened in English is English too, and follows a switch while open.
    await page.click(f"{item} [data-testid=documents-view]")
    await page.wait_for_selector("dialog.doc-viewer[open] canvas")
    assert await page.text_content("[data-testid=viewer-print]") == "Print"
    # (The switcher is behind the modal viewer; the language can still change, e.g. by the
    # office's reset, and the open viewer follows.)
    await page.evaluate(
        "() => import('/static/common/js/i18n.js').then((m) => m.setLanguage('sv', "
        "{remember: false}))")
    assert await page.text_content("[data-testid=viewer-print]") == "Skriv ut"
    left = await old_texts(page, tables, "en")
    assert left == [], left

    # -- the call ends while the document is open: all of it goes ------------------------------
    await expert.page.click("#end-call")
    await page.wait_for_selector("#screen-ended:not([hidden])", timeout=15000)
    cleared = await page.evaluate(
        """() => ({viewers: window.__etapalvelu.openViewers(),
                   dialogs: document.querySelectorAll('dialog.doc-viewer').length,
                   canvases: document.querySelectorAll('canvas').length,
                   images: document.querySelectorAll('img').length,
                   panel: document.querySelectorAll('#document-panel-mount *').length,
                   printArea: document.querySelectorAll('.doc-print-area').length})""")
    assert cleared == {"viewers": 0, "dialogs": 0, "canvases": 0, "images": 0, "panel": 0,
                       "printArea": 0}, cleared
    await assert_axe_clean(page, "ended")
    await screenshot(page, "kiosk-screen-ended-1280x800")
    kiosk.assert_no_errors()
    expert.assert_no_errors()
