"""HTTP: health, readiness, metrics, pages and static files, the admin REST API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from signaling.transport.pages import PAGES, safe_join
from tests.support.service import LiveService


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest_asyncio.fixture
async def admin_headers(live_service: LiveService) -> dict[str, str]:
    return {"Authorization": f"Bearer {await live_service.login('admin')}"}


async def test_health_and_readiness(live_service: LiveService, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{live_service.base_url}/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}
    async with http.get(f"{live_service.base_url}/readyz") as response:
        body = await response.json()
        assert response.status == 200, body
        assert body["checks"]["database"] == "ok"
        expected_relay = "absent" if live_service.services.relay is None else "ok"
        assert body["checks"]["relay"] == expected_relay
    # Once media_relay provides LocalRelay, the service runs it in-process.
    try:
        from media_relay.control import LocalRelay  # noqa: F401
    except ImportError:
        return
    assert live_service.services.relay is not None and live_service.services.relay.running


async def test_not_ready_without_database(
    live_service: LiveService, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    from signaling.db import create_engine

    broken = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    monkeypatch.setattr(live_service.services, "engine", broken)
    async with http.get(f"{live_service.base_url}/readyz") as response:
        assert response.status == 503
        body = await response.json()
    assert body["status"] == "not ready" and body["checks"]["database"].startswith("error")
    await broken.dispose()


async def test_metrics_are_prometheus_text(
    live_service: LiveService, http: aiohttp.ClientSession
) -> None:
    await live_service.login("kela")
    async with http.get(f"{live_service.base_url}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    assert 'etapalvelu_logins_total{result="ok"} 1.0' in text
    assert "etapalvelu_event_seconds_bucket" in text
    # the in-process relay's figures are served there too (the README promises them)
    assert "etapalvelu_relay_rooms 0.0" in text
    assert "etapalvelu_relay_rtp_forwarded_packets_total" in text


@pytest.mark.parametrize("path", ["/", *PAGES])
async def test_pages_are_served(
    live_service: LiveService, http: aiohttp.ClientSession, path: str
) -> None:
    async with http.get(f"{live_service.base_url}{path}") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/html")
        assert "<html" in (await response.text()).lower()


async def test_static_files_and_vendor_client(
    live_service: LiveService, http: aiohttp.ClientSession
) -> None:
    base = live_service.base_url
    async with http.get(f"{base}/static/vendor/socket.io.min.js") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/javascript")
        assert len(await response.read()) > 10_000
    async with http.get(f"{base}/static/common/css/common.css") as response:
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/css")
    async with http.get(f"{base}/static/kiosk/kiosk.js") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/javascript")


@pytest.mark.parametrize(
    "path",
    [
        "/static/common/../../pyproject.toml",
        "/static/common/%2e%2e/%2e%2e/pyproject.toml",
        "/static/common/..%2f..%2fpyproject.toml",
        "/static/kiosk/%2fetc%2fpasswd",
        "/static/common/nothing-here.js",
        "/static/vendor/../../package.json",
        "/static/vendor/other.js",
        "/static/common/",
    ],
)
async def test_static_files_stay_inside_their_folders(
    live_service: LiveService, http: aiohttp.ClientSession, path: str
) -> None:
    async with http.get(f"{live_service.base_url}{path}", allow_redirects=False) as response:
        assert response.status in (404, 403, 400), response.status
        assert "[project]" not in await response.text()


def test_safe_join_refuses_escapes(tmp_path: Any) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.js").write_text("x")
    (tmp_path / "secret").write_text("s")
    (root / "link").symlink_to(tmp_path / "secret")
    assert safe_join(root, "a.js") == (root / "a.js").resolve()
    for bad in ("../secret", "/etc/passwd", "link", "a.js\x00", "", "."):
        assert safe_join(root, bad) is None


async def test_admin_api_requires_an_admin(
    live_service: LiveService, http: aiohttp.ClientSession
) -> None:
    url = f"{live_service.base_url}/api/admin/users"
    async with http.get(url) as response:
        assert response.status == 401
    expert = await live_service.login("kela")
    async with http.get(url, headers={"Authorization": f"Bearer {expert}"}) as response:
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "forbidden"
    async with http.get(url, headers={"Authorization": "Bearer forged-xxxxxxxxxxxxxxxx"}) as r:
        assert r.status == 401
    async with http.post(
        f"{live_service.base_url}/api/admin/offices",
        json={"name": "X", "municipality": "Y"},
        headers={"Authorization": f"Bearer {expert}"},
    ) as response:
        assert response.status == 403


async def test_admin_api_creates_lists_and_disables(
    live_service: LiveService, http: aiohttp.ClientSession, admin_headers: dict[str, str]
) -> None:
    base = f"{live_service.base_url}/api/admin"

    async def post(path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        async with http.post(f"{base}{path}", json=body, headers=admin_headers) as response:
            return response.status, await response.json()

    async def items(path: str) -> list[dict[str, Any]]:
        async with http.get(f"{base}{path}", headers=admin_headers) as response:
            assert response.status == 200
            result: list[dict[str, Any]] = (await response.json())["items"]
            return result

    status, office = await post(
        "/offices",
        {"name": "Palvelupiste Sello", "municipality": "Espoo", "default_language": "sv"},
    )
    assert status == 201 and office["item"]["default_language"] == "sv"
    office_id = office["item"]["id"]
    status, kiosk = await post("/endpoints", {"office_id": office_id, "name": "Sello 1"})
    assert status == 201 and len(kiosk["credential"]) >= 40
    status, user = await post(
        "/users",
        {
            "username": "migri1",
            "display_name": "Mikko Migri",
            "role": "expert",
            "password": "pitka-salasana",
            "authorities": ["migri"],
            "languages": ["fin", "ara"],
        },
    )
    assert status == 201 and user["item"]["authorities"] == ["migri"]
    status, authority = await post(
        "/authorities",
        {"code": "ymparisto", "name_fi": "Ympäristö", "name_sv": "Miljö", "name_en": "Environment"},
    )
    assert status == 201
    assert any(o["name"] == "Palvelupiste Sello" for o in await items("/offices"))
    assert any(e["name"] == "Sello 1" for e in await items("/endpoints"))
    assert any(u["username"] == "migri1" for u in await items("/users"))
    assert any(a["code"] == "ymparisto" for a in await items("/authorities"))

    # The new kiosk can connect with the credential it was given once.
    client = await live_service.connect(
        {"endpoint_id": kiosk["item"]["id"], "credential": kiosk["credential"]}
    )
    assert (await client.call("session:whoami", {}))["principal"]["office_id"] == office_id
    status, reset = await post(f"/endpoints/{kiosk['item']['id']}/credential")
    assert status == 200 and reset["credential"] != kiosk["credential"]

    status, _ = await post(f"/authorities/{authority['item']['id']}/disable")
    assert status == 200
    status, _ = await post(f"/offices/{office_id}/disable")
    assert status == 200
    assert not next(o for o in await items("/offices") if o["id"] == office_id)["enabled"]
    status, body = await post(f"/users/{user['item']['id']}/disable")
    assert status == 200 and body["enabled"] is False
    status, body = await post(f"/users/{user['item']['id']}/enable")
    assert status == 200 and body["enabled"] is True


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/offices", {"name": "", "municipality": "Y"}, 400, "invalid"),
        ("/offices", {"name": "X", "municipality": "Y", "default_language": "de"}, 400, "invalid"),
        ("/offices", {"name": "X", "municipality": "Y", "boss": 1}, 400, "invalid"),
        ("/offices", [1, 2], 400, "invalid"),
        ("/endpoints", {"office_id": 999, "name": "K"}, 404, "not_found"),
        ("/endpoints", {"office_id": "one", "name": "K"}, 400, "invalid"),
        (
            "/users",
            {"username": "kela", "display_name": "D", "role": "expert", "password": "x" * 8},
            409,
            "conflict",
        ),
        (
            "/users",
            {"username": "uu", "display_name": "D", "role": "boss", "password": "x" * 8},
            400,
            "invalid",
        ),
        (
            "/users",
            {"username": "uu", "display_name": "D", "role": "expert", "password": "short"},
            400,
            "invalid",
        ),
        (
            "/users",
            {"username": "Bad Name", "display_name": "D", "role": "admin", "password": "x" * 8},
            400,
            "invalid",
        ),
        (
            "/authorities",
            {"code": "kela", "name_fi": "a", "name_sv": "b", "name_en": "c"},
            409,
            "conflict",
        ),
        ("/nothing", {}, 404, "not_found"),
        ("/users/999/disable", None, 404, "not_found"),
        ("/users/abc/disable", None, 404, "not_found"),
        ("/users/1/explode", None, 404, "not_found"),
    ],
)
async def test_admin_api_refusals(
    live_service: LiveService,
    http: aiohttp.ClientSession,
    admin_headers: dict[str, str],
    path: str,
    body: Any,
    status: int,
    code: str,
) -> None:
    async with http.post(
        f"{live_service.base_url}/api/admin{path}", json=body, headers=admin_headers
    ) as response:
        assert response.status == status, await response.text()
        answer = await response.json()
    assert answer["ok"] is False and answer["error"]["code"] == code


async def test_oversized_body_is_refused(
    live_service: LiveService, http: aiohttp.ClientSession, admin_headers: dict[str, str]
) -> None:
    limit = live_service.settings.max_message_bytes
    async with http.post(
        f"{live_service.base_url}/api/admin/offices",
        json={"name": "x" * (limit + 1), "municipality": "Y"},
        headers=admin_headers,
    ) as response:
        assert response.status == 413
        assert (await response.json())["error"]["code"] == "too_large"


async def test_favicon_is_served(live_service: LiveService, http: aiohttp.ClientSession) -> None:
    # Browsers ask for it on every page; a 404 there filled the console with errors.
    for path in ("/favicon.ico", "/favicon.svg"):
        async with http.get(f"{live_service.base_url}{path}") as response:
            assert response.status == 200
            assert response.content_type == "image/svg+xml"
            assert (await response.text()).startswith("<svg")
