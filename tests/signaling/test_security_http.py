"""Findings of the outside review over HTTP, performed against the running service.

- 3: login flood (hashing unbounded, per-pair throttle only, reset-everything eviction);
- 6: /readyz said ready with Redis dead, tables missing or the disk full;
- 9: no security headers, a version banner, /metrics without login;
- 13: half-open HTTP connections never timed out.

Different client addresses are real: every 127.x.y.z address is loopback on Linux, so a client
socket bound to 127.0.0.2 is another address to the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from signaling.directory import identity
from signaling.directory.login_guard import FailureCounter, Limits, LoginGuard
from tests.support.net import free_port
from tests.support.service import LiveService, make_live_service


@contextlib.asynccontextmanager
async def client_from(address: str, **kwargs: Any) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(local_addr=(address, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector, **kwargs) as http:
        yield http


async def _login(http: aiohttp.ClientSession, base: str, user: str, password: str) -> int:
    async with http.post(f"{base}/api/login", json={"username": user, "password": password}) as r:
        await r.read()
        return r.status


# --- finding 3: logins ---------------------------------------------------------------------


async def test_a_login_flood_is_refused_fast_and_a_real_login_gets_through(
    tmp_path: Path,
) -> None:
    async with make_live_service(tmp_path, login_hash_concurrency=2, login_queue_limit=4) as live:
        hashes = 0
        real_verify = identity.verify_password

        def counting_verify(password_hash: str, password: str) -> bool:
            nonlocal hashes
            hashes += 1
            return real_verify(password_hash, password)

        identity.verify_password = counting_verify  # type: ignore[assignment]
        try:
            async with client_from("127.0.0.2") as attacker, client_from("127.0.0.3") as clerk:
                flood = [
                    asyncio.create_task(_login(attacker, live.base_url, f"nobody{i}", "guess"))
                    for i in range(200)
                ]
                await asyncio.sleep(0.05)
                real = await _login(clerk, live.base_url, "sihteeri", "sihteeri-demo")
                statuses = await asyncio.gather(*flood)
        finally:
            identity.verify_password = real_verify  # type: ignore[assignment]
    assert real == 200
    # One address holds at most two places: the rest of its flood was refused without a hash.
    assert statuses.count(503) >= 150
    assert set(statuses) <= {401, 429, 503}
    assert hashes <= 200 - statuses.count(503) + 1


async def test_spraying_one_password_over_usernames_is_limited_per_address(
    live_service: LiveService,
) -> None:
    per_address = Limits().per_address
    async with client_from("127.0.0.4") as sprayer, client_from("127.0.0.5") as other:
        for i in range(per_address):
            assert await _login(sprayer, live_service.base_url, f"user{i}", "Kesä2026!") == 401
        # the next username from that address is refused without checking the password
        assert await _login(sprayer, live_service.base_url, "kela", "kela-demo") == 429
        assert await _login(other, live_service.base_url, "kela", "kela-demo") == 200


async def _login_as(http: aiohttp.ClientSession, base: str, forwarded: str, password: str) -> int:
    async with http.post(
        f"{base}/api/login",
        json={"username": "kela", "password": password},
        headers={"X-Forwarded-For": forwarded},
    ) as r:
        await r.read()
        return r.status


async def test_behind_a_trusted_proxy_logins_count_per_client(tmp_path: Path) -> None:
    """Behind HAProxy every login comes from the proxy's address: with it in trusted_proxies
    the limits count the client in X-Forwarded-For, and only from the proxy."""
    per_pair = Limits().per_pair
    async with make_live_service(tmp_path, trusted_proxies=["127.0.0.6/32"]) as live:
        base = live.base_url
        async with client_from("127.0.0.6") as proxy:
            for _ in range(per_pair):
                assert await _login_as(proxy, base, "198.51.100.7, 203.0.113.5", "wrong") == 401
            # that client is throttled, another behind the same proxy is not
            assert await _login_as(proxy, base, "203.0.113.5", "kela-demo") == 429
            assert await _login_as(proxy, base, "203.0.113.6", "kela-demo") == 200
        # from an untrusted peer the header is ignored: it is counted as itself
        async with client_from("127.0.0.7") as other:
            for _ in range(per_pair):
                assert await _login_as(other, base, "203.0.113.9", "wrong") == 401
            assert await _login_as(other, base, "203.0.113.10", "kela-demo") == 429


async def test_guessing_one_account_from_many_addresses_is_limited(tmp_path: Path) -> None:
    async with make_live_service(tmp_path) as live:
        guard: LoginGuard = live.services.extras["login_guard"]
        guard.per_username.limit = 6  # 50 by default; six addresses make the point
        for n in range(6):
            async with client_from(f"127.0.1.{n + 1}") as http:
                assert await _login(http, live.base_url, "kela", "wrong") == 401
        async with client_from("127.0.2.1") as http:
            assert await _login(http, live.base_url, "kela", "kela-demo") == 429
            assert await _login(http, live.base_url, "rakennus", "rakennus-demo") == 200


async def test_unknown_and_known_usernames_cost_one_hash_each(live_service: LiveService) -> None:
    calls: list[str] = []
    real_verify = identity.verify_password

    def counting_verify(password_hash: str, password: str) -> bool:
        calls.append(password_hash)
        return real_verify(password_hash, password)

    identity.verify_password = counting_verify  # type: ignore[assignment]
    try:
        async with aiohttp.ClientSession() as http:
            assert await _login(http, live_service.base_url, "nosuchuser", "x") == 401
            assert await _login(http, live_service.base_url, "kela", "x") == 401
    finally:
        identity.verify_password = real_verify  # type: ignore[assignment]
    assert len(calls) == 2
    # both are argon2id hashes with the same parameters: the same work
    params = {h.rsplit("$", 2)[0] for h in calls}
    assert len(params) == 1


def test_failure_counter_forgets_one_key_at_a_time_never_all() -> None:
    now = [0.0]
    counter = FailureCounter(limit=3, window=300, max_keys=100, clock=lambda: now[0])
    for _ in range(3):
        counter.add(("10.0.0.1", "kela"))
    assert counter.exceeded(("10.0.0.1", "kela"))
    # A flood of fresh keys: the old implementation emptied its table when it was full.
    for i in range(99):
        now[0] += 0.001
        counter.add(("10.9.9.9", f"user{i}"))
    assert counter.exceeded(("10.0.0.1", "kela"))
    assert len(counter) == 100
    counter.add(("10.9.9.9", "one-more"))
    assert len(counter) == 100  # bounded: the least recently failed key went
    now[0] += 301
    assert not counter.exceeded(("10.9.9.9", "one-more"))


# --- finding 6: readiness ------------------------------------------------------------------


async def _ready(live: LiveService) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{live.base_url}/readyz") as response,
    ):
        return response.status, await response.json()


async def test_readyz_fails_when_a_table_is_missing(live_service: LiveService) -> None:
    status, body = await _ready(live_service)
    assert (status, body["checks"]["database"]) == (200, "ok")
    async with live_service.services.engine.begin() as connection:
        await connection.execute(text("DROP TABLE service_log"))
    status, body = await _ready(live_service)
    assert status == 503
    assert "service_log" in body["checks"]["database"]


async def test_readyz_fails_when_the_schema_is_not_at_head(live_service: LiveService) -> None:
    async with live_service.services.engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    status, body = await _ready(live_service)
    assert status == 503
    assert "schema at" in body["checks"]["database"]


async def test_readyz_fails_when_redis_dies(tmp_path: Path) -> None:
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(  # noqa: ASYNC220 (starts at once; nothing to wait for)
        [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            with contextlib.suppress(OSError):
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            await asyncio.sleep(0.05)
        async with make_live_service(tmp_path, redis_url=f"redis://127.0.0.1:{port}/0") as live:
            status, body = await _ready(live)
            assert (status, body["checks"]["redis"]) == (200, "ok")
            process.kill()
            process.wait(10)
            status, body = await _ready(live)
            assert status == 503
            assert body["checks"]["redis"].startswith("error")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


@contextlib.contextmanager
def small_disk(where: Path, megabytes: int) -> Any:
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr!r}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(path: Path, chunk: int) -> None:
    """Write zeros to `path` until the disk is full."""
    with contextlib.suppress(OSError), open(path, "wb", buffering=0) as handle:
        while True:
            handle.write(b"\0" * chunk)


async def test_readyz_fails_when_the_disk_is_full(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", 16) as disk:
        async with make_live_service(tmp_path, data_dir=disk, ready_min_free_bytes=0) as live:
            status, body = await _ready(live)
            assert status == 200, body
            fill(disk / "filler", 1 << 20)
            fill(disk / "filler2", 512)  # what is left after the last whole MiB
            status, body = await _ready(live)
            assert status == 503
            assert body["checks"]["disk"].startswith("error"), body


async def test_readyz_reports_low_disk_space(tmp_path: Path) -> None:
    async with make_live_service(tmp_path, ready_min_free_bytes=1 << 60) as live:
        status, body = await _ready(live)
        assert status == 503
        assert "MiB free" in body["checks"]["disk"]


# --- finding 9: headers and metrics ---------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/", "/kiosk", "/expert", "/admin", "/static/common/js/i18n.js", "/nosuch", "/healthz"]
)
async def test_every_answer_carries_the_security_headers(
    live_service: LiveService, path: str
) -> None:
    async with aiohttp.ClientSession() as http, http.get(live_service.base_url + path) as r:
        headers = r.headers
    directives = dict(
        part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";")
    )
    assert directives["script-src"] == "'self'"  # no inline script, no eval
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Server"] == "etapalvelu"


async def test_metrics_need_the_token_when_one_is_set(tmp_path: Path) -> None:
    token = "m" * 32
    async with make_live_service(tmp_path, metrics_token=token) as live:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{live.base_url}/metrics") as r:
                assert r.status == 401
            async with http.get(
                f"{live.base_url}/metrics", headers={"Authorization": "Bearer " + "x" * 32}
            ) as r:
                assert r.status == 401
            async with http.get(
                f"{live.base_url}/metrics", headers={"Authorization": f"Bearer {token}"}
            ) as r:
                assert r.status == 200
                assert "etapalvelu_sockets" in await r.text()


async def test_metrics_without_a_token_are_for_this_machine_only(
    live_service: LiveService,
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{live_service.base_url}/metrics") as r:
            assert r.status == 200
        # through a proxy (HAProxy adds X-Forwarded-For) the scraper is somewhere else
        async with http.get(
            f"{live_service.base_url}/metrics", headers={"X-Forwarded-For": "198.51.100.7"}
        ) as r:
            assert r.status == 404


async def test_metrics_on_their_own_address(tmp_path: Path) -> None:
    port = free_port()
    async with make_live_service(
        tmp_path, metrics_address=f"127.0.0.1:{port}", metrics_token="t" * 20
    ) as live:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                assert r.status == 200
                assert "etapalvelu_sockets" in await r.text()
            async with http.get(f"http://127.0.0.1:{port}/api/me") as r:
                assert r.status == 404  # nothing else is served there
            async with http.get(f"{live.base_url}/metrics") as r:
                assert r.status == 401


# --- finding 13: half-open connections ------------------------------------------------------


async def test_half_open_and_slow_connections_are_closed(tmp_path: Path) -> None:
    async with make_live_service(tmp_path, http_idle_timeout=1.0) as live:
        port = live.settings.port

        async def closed_after(first: bytes, trickle: bytes | None) -> float:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            started = time.monotonic()
            writer.write(first)
            try:
                while time.monotonic() - started < 15:
                    with contextlib.suppress(TimeoutError):
                        if await asyncio.wait_for(reader.read(1024), 0.5) == b"":
                            return time.monotonic() - started
                    if trickle is not None and not writer.is_closing():
                        with contextlib.suppress(ConnectionError):
                            writer.write(trickle)
                raise AssertionError("the connection is still open after 15 s")
            finally:
                writer.close()

        waited = await asyncio.gather(
            closed_after(b"", None),  # connects and says nothing
            closed_after(b"GET / HTTP/1.1\r\nHost: x\r\n", None),  # half a request head
            closed_after(b"GET / HTTP/1.1\r\n", b"X-Slow: 1\r\n"),  # one header line at a time
        )
        assert all(seconds < 15 for seconds in waited)
