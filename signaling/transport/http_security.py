"""Response headers that every page and API answer carries, and the separate metrics listener.

The pages are ES modules served from this origin with no inline script, so the Content
Security Policy allows scripts from 'self' only: an injected `<script>` or `onclick=` does not
run. Styles may be inline (the document panel ships its rules in a `<style>` it creates, the
landing page has a few) — CSS cannot run code, and keeping it avoids a build step. Documents
are shown from `blob:` URLs (images, and PDFs in a frame), so `img-src` and `frame-src` allow
them. No page may be framed by another site (`frame-ancestors 'none'`: clickjacking a kiosk or a
console). The `Server` header names the product only, not the versions of Python and aiohttp.
"""

from __future__ import annotations

from aiohttp import web

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "frame-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "geolocation=(), payment=(), usb=()",
}

SERVER_NAME = "etapalvelu"


async def add_security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    """aiohttp `on_response_prepare` hook: runs for every response, errors and files included."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers["Server"] = SERVER_NAME


def install(app: web.Application) -> None:
    app.on_response_prepare.append(add_security_headers)


__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "add_security_headers", "install"]
