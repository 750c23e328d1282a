"""The web pages and static files (see docs/interfaces.md for the table of routes).

Files are looked up when requested, not when the app starts, so a console whose files land
later is served without a restart; a page that does not exist yet gets a placeholder.
"""

from __future__ import annotations

import html
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

ROOT = Path(__file__).resolve().parents[2]

STATIC_DIRS: dict[str, Path] = {
    "common": ROOT / "signaling" / "static",
    "kiosk": ROOT / "endpoint" / "static" / "kiosk",
    "console": ROOT / "expert_console" / "static",
}
VENDOR_FILES: dict[str, Path] = {
    "socket.io.min.js": ROOT / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js",
    "socket.io.min.js.map": ROOT
    / "node_modules"
    / "socket.io-client"
    / "dist"
    / "socket.io.min.js.map",
    # The kiosk's own document viewer: PDF.js renders into a canvas, so the customer gets no
    # browser PDF viewer with its save button.
    "pdf.min.mjs": ROOT / "node_modules" / "pdfjs-dist" / "build" / "pdf.min.mjs",
    "pdf.worker.min.mjs": ROOT / "node_modules" / "pdfjs-dist" / "build" / "pdf.worker.min.mjs",
    # Sparklines on the expert console and charts on the admin pages.
    "uPlot.iife.min.js": ROOT / "node_modules" / "uplot" / "dist" / "uPlot.iife.min.js",
    "uPlot.min.css": ROOT / "node_modules" / "uplot" / "dist" / "uPlot.min.css",
}
PAGES: dict[str, tuple[Path, str]] = {
    "/kiosk": (STATIC_DIRS["kiosk"] / "index.html", "Kioski · Kiosk"),
    "/expert": (STATIC_DIRS["console"] / "expert.html", "Asiantuntija · Expert"),
    "/interpreter": (STATIC_DIRS["console"] / "interpreter.html", "Tulkki · Interpreter"),
    "/admin": (STATIC_DIRS["common"] / "admin" / "index.html", "Ylläpito · Admin"),
}

# Browsers refuse ES modules served with a non-JavaScript type; don't rely on the host's
# mime database for the types the consoles are made of.
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
}

NO_CACHE = {"Cache-Control": "no-cache"}


def file_response(path: Path, cache: bool = False) -> web.FileResponse:
    headers = {} if cache else dict(NO_CACHE)
    content_type = CONTENT_TYPES.get(path.suffix.lower())
    if content_type is not None:
        headers["Content-Type"] = content_type
    return web.FileResponse(path, headers=headers)


LANDING = """<!doctype html>
<html lang="fi"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Etäpalvelu</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}
a{display:block;font-size:1.3rem;margin:.8rem 0}</style></head>
<body><h1>Etäpalvelu</h1>
<p lang="fi">Yhteispalvelupisteen etäpalvelu.</p>
<p lang="sv">Distanstjänst för samservicekontoret.</p>
<p lang="en">Remote service for one-stop service offices.</p>
<nav>
<a href="/kiosk">Kioski · Kiosk · Kiosk</a>
<a href="/expert">Asiantuntija · Expert · Expert</a>
<a href="/interpreter">Tulkki · Tolk · Interpreter</a>
<a href="/admin">Ylläpito · Administration · Administration</a>
<a href="/book">Ajanvaraus · Tidsbokning · Book an appointment</a>
</nav></body></html>
"""


def _placeholder(title: str) -> str:
    return f"""<!doctype html>
<html lang="fi"><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>
<body><h1>{html.escape(title)}</h1>
<p lang="fi">Tämä näkymä ei ole vielä valmis.</p>
<p lang="sv">Den här vyn är inte klar ännu.</p>
<p lang="en">This view is not ready yet.</p></body></html>
"""


def safe_join(root: Path, relative: str) -> Path | None:
    """`root/relative` if it stays inside root and is a file, else None."""
    if not relative or "\x00" in relative or relative.startswith("/"):
        return None
    try:
        candidate = (root / relative).resolve()
        resolved_root = root.resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if not candidate.is_relative_to(resolved_root) or not candidate.is_file():
        return None
    return candidate


async def landing(_request: web.Request) -> web.Response:
    return web.Response(text=LANDING, content_type="text/html", headers=NO_CACHE)


def _page(path: Path, title: str) -> Handler:
    async def serve(_request: web.Request) -> web.StreamResponse:
        found = safe_join(path.parent, path.name)
        if found is not None:
            return file_response(found)
        return web.Response(text=_placeholder(title), content_type="text/html", headers=NO_CACHE)

    return serve


def _static(root: Path) -> Handler:
    async def serve(request: web.Request) -> web.StreamResponse:
        found = safe_join(root, request.match_info["path"])
        if found is None:
            raise web.HTTPNotFound()
        return file_response(found)

    return serve


async def vendor(request: web.Request) -> web.StreamResponse:
    path = VENDOR_FILES.get(request.match_info["name"])
    if path is None or not path.is_file():
        raise web.HTTPNotFound()
    return file_response(path, cache=True)


# The product's mark (two speech bubbles, the service's blue), so that no page asks in vain.
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">'
    '<rect width="64" height="64" rx="12" fill="#003580"/>'
    '<path d="M12 14h28a6 6 0 0 1 6 6v12a6 6 0 0 1-6 6H24l-8 8v-8h-4a6 6 0 0 1-6-6V20'
    'a6 6 0 0 1 6-6z" fill="#fff"/>'
    '<path d="M50 26h2a6 6 0 0 1 6 6v10a6 6 0 0 1-6 6h-2v7l-7-7H32a6 6 0 0 1-6-6v-2h14'
    'a10 10 0 0 0 10-10z" fill="#8fb8ff"/></svg>'
)


async def favicon(_request: web.Request) -> web.Response:
    return web.Response(
        text=FAVICON, content_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"}
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", landing)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/favicon.svg", favicon)
    for route, (path, title) in PAGES.items():
        app.router.add_get(route, _page(path, title))
    for prefix, root in STATIC_DIRS.items():
        app.router.add_get(f"/static/{prefix}/{{path:.+}}", _static(root))
    app.router.add_get("/static/vendor/{name}", vendor)
