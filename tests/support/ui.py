"""What the screen tests check on a page: axe-core findings, controls inside the viewport, texts
left in another language.

axe-core comes from npm (package.json) and is injected into the page by the test, so nothing of
it is served by the product.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"

# Sizes the screens are made for: a 1080p kiosk or desk, a 1280×800 kiosk or laptop, a phone.
# `key: "text"` in a strings table; the text in double, single or back quotes (no ${} in it).
PAIR = re.compile(
    r"""([A-Za-z_][\w.]*|"[^"]+")\s*:\s*"""
    r"""(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|`([^`$]*)`)"""
)

VIEWPORTS: dict[str, dict[str, int]] = {
    "1920x1080": {"width": 1920, "height": 1080},
    "1280x800": {"width": 1280, "height": 800},
    "390x844": {"width": 390, "height": 844},
}


async def axe_serious(page: Any) -> list[dict[str, Any]]:
    """axe-core's critical and serious violations on the page as it is now (empty when clean).

    Each finding keeps its rule id, impact, help text and the selectors it hit, so a failing
    assertion says what to fix.
    """
    if not AXE.is_file():
        raise AssertionError(f"{AXE} is missing: run scripts/setup test (npm ci)")
    if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
        # Evaluated through DevTools, which the page's Content-Security-Policy (script-src
        # 'self', no inline scripts) does not govern: the product's CSP stays as shipped.
        await page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
        if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
            raise AssertionError("axe-core did not load into the page")
    result = await page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ['violations']});
            return r.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.slice(0, 5).map(n => n.target.join(' ')),
            }));
        }"""
    )
    return [v for v in result if v.get("impact") in ("critical", "serious")]


async def assert_axe_clean(page: Any, state: str) -> None:
    found = await axe_serious(page)
    assert not found, f"axe-core in state {state!r}:\n" + json.dumps(found, indent=1)


async def outside_viewport(page: Any, selectors: list[str]) -> list[str]:
    """The selectors whose (first visible) element is missing, hidden or not wholly inside the
    viewport without scrolling. The page is scrolled to the top first: what counts is what a
    person sees without touching the scroll bar."""
    await page.evaluate("() => window.scrollTo(0, 0)")
    return list(
        await page.evaluate(
            """(selectors) => {
                const w = window.innerWidth, h = window.innerHeight;
                const bad = [];
                for (const sel of selectors) {
                    const els = [...document.querySelectorAll(sel)].filter(e => {
                        const r = e.getBoundingClientRect();
                        const s = getComputedStyle(e);
                        return r.width > 0 && r.height > 0 && s.visibility !== 'hidden'
                            && s.display !== 'none';
                    });
                    if (!els.length) { bad.push(sel + ' (not shown)'); continue; }
                    const r = els[0].getBoundingClientRect();
                    if (r.left < 0 || r.top < 0 || r.right > w + 0.5 || r.bottom > h + 0.5) {
                        bad.push(`${sel} at ${Math.round(r.left)},${Math.round(r.top)}-`
                            + `${Math.round(r.right)},${Math.round(r.bottom)} in ${w}x${h}`);
                    }
                }
                return bad;
            }""",
            selectors,
        )
    )


async def assert_in_viewport(page: Any, selectors: list[str], state: str) -> None:
    bad = await outside_viewport(page, selectors)
    assert not bad, f"not inside the viewport without scrolling in state {state!r}: {bad}"


async def page_overflows_horizontally(page: Any) -> bool:
    return bool(
        await page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth + 1")
    )


def strings_of(path: Path) -> dict[str, dict[str, str]]:
    """The {lang: {key: text}} tables of a strings.js / i18n.js file, read as text.

    The files are ES modules of object literals; the texts are what matter here, so this reads
    `key: "text"` pairs under each `fi:` / `sv:` / `en:` block rather than running JavaScript.
    """
    source = path.read_text(encoding="utf-8")
    tables: dict[str, dict[str, str]] = {}
    blocks = list(re.finditer(r"^\s*(fi|sv|en)\s*:\s*\{", source, re.MULTILINE))
    for index, block in enumerate(blocks):
        end = blocks[index + 1].start() if index + 1 < len(blocks) else len(source)
        body = source[block.end() : end]
        pairs = PAIR.findall(body)
        table = tables.setdefault(block.group(1), {})
        for key, dq, sq, bq in pairs:
            table[key.strip('"')] = dq or sq or bq
    return tables


async def texts_in_language(page: Any, tables: dict[str, dict[str, str]], lang: str) -> list[str]:
    """Texts on the page (visible text, placeholders, labels) that exist only in `lang`'s table.

    Used after switching away from `lang`: anything returned was left in the old language.
    Texts that are the same in several languages (names, numbers) are not counted.
    """
    own = {t for t in tables.get(lang, {}).values() if len(t) >= 4 and "{" not in t}
    others = set()
    for other, table in tables.items():
        if other != lang:
            others |= set(table.values())
    only_old = own - others
    shown: list[str] = await page.evaluate(
        """() => {
            const out = [];
            const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
            while (walk.nextNode()) {
                const n = walk.currentNode, el = n.parentElement;
                if (!el || !n.textContent.trim()) continue;
                const r = el.getBoundingClientRect(), s = getComputedStyle(el);
                if (r.width === 0 || r.height === 0 || s.visibility === 'hidden') continue;
                out.push(n.textContent.trim());
            }
            for (const el of document.querySelectorAll('[aria-label],[placeholder],[title]')) {
                for (const a of ['aria-label', 'placeholder', 'title']) {
                    const v = el.getAttribute(a); if (v) out.push(v.trim());
                }
            }
            return out;
        }"""
    )
    return sorted({text for text in shown if text in only_old})
