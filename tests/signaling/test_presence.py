"""Presence: chosen statuses and kiosk connectivity, pushed live and kept across restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import socketio

from signaling.flow.presence import presence_snapshot
from tests.support.service import LiveService, make_live_service


class Pushes:
    """Collects `presence:changed` pushes received by a client."""

    def __init__(self, client: socketio.AsyncClient) -> None:
        self.items: list[dict[str, Any]] = []
        client.on("presence:changed", self.items.append)

    async def wait_for(self, **fields: Any) -> dict[str, Any]:
        for _ in range(500):
            for item in self.items:
                if all(item.get(k) == v for k, v in fields.items()):
                    return item
            await asyncio.sleep(0.02)
        raise AssertionError(f"no push with {fields}; got {self.items}")


def entry(snapshot: dict[str, Any], kind: str, ident: int) -> dict[str, Any]:
    items = snapshot["users"] if kind == "user" else snapshot["endpoints"]
    return next(item for item in items if item["id"] == ident)


async def test_status_changes_are_pushed_to_staff(live_service: LiveService) -> None:
    ids = live_service.demo.user_ids
    clerk = await live_service.connect_user("sihteeri")
    snapshot = await clerk.call("presence:get", {})
    assert snapshot["ok"] is True
    assert entry(snapshot, "user", ids["tulkki"])["online"] is False
    assert entry(snapshot, "user", ids["tulkki"])["languages"] == ["ara", "fin", "fse"]
    pushes = Pushes(clerk)

    interpreter = await live_service.connect_user("tulkki")
    await pushes.wait_for(kind="user", id=ids["tulkki"], online=True, status="available")
    assert (await interpreter.call("presence:set", {"status": "busy"}))["status"] == "busy"
    await pushes.wait_for(kind="user", id=ids["tulkki"], status="busy")

    kiosk = await live_service.connect_kiosk()
    endpoint_id = live_service.demo.endpoint_id
    await pushes.wait_for(kind="endpoint", id=endpoint_id, presence="online")
    await kiosk.disconnect()
    await pushes.wait_for(kind="endpoint", id=endpoint_id, presence="offline")

    await interpreter.disconnect()
    await pushes.wait_for(kind="user", id=ids["tulkki"], online=False, status="busy")


async def test_second_socket_keeps_a_person_online(live_service: LiveService) -> None:
    ids = live_service.demo.user_ids
    first = await live_service.connect_user("kela")
    second = await live_service.connect_user("kela")
    await first.disconnect()
    await asyncio.sleep(0.2)
    snapshot = await presence_snapshot(live_service.services)
    assert entry(snapshot, "user", ids["kela"])["online"] is True
    await second.disconnect()
    for _ in range(500):
        snapshot = await presence_snapshot(live_service.services)
        if not entry(snapshot, "user", ids["kela"])["online"]:
            break
        await asyncio.sleep(0.02)
    assert entry(snapshot, "user", ids["kela"])["online"] is False


async def test_clerk_sees_only_own_office_kiosks(tmp_path: Path) -> None:
    async with make_live_service(tmp_path) as live:
        from signaling.directory import directory

        async with live.services.sessions() as session:
            other = await directory.create_office(
                session, directory.OfficeCreate(name="Muu", municipality="Oulu")
            )
            far_kiosk, credential = await directory.create_endpoint(
                session, directory.EndpointCreate(office_id=other.id, name="Oulu 1")
            )
            await session.commit()
        clerk = await live.connect_user("sihteeri")
        admin = await live.connect_user("admin")
        seen_by_clerk = (await clerk.call("presence:get", {}))["endpoints"]
        seen_by_admin = (await admin.call("presence:get", {}))["endpoints"]
        assert [e["office_id"] for e in seen_by_clerk] == [live.demo.office_id]
        assert len(seen_by_admin) == 2
        clerk_pushes, admin_pushes = Pushes(clerk), Pushes(admin)
        await live.connect({"endpoint_id": far_kiosk.id, "credential": credential})
        await admin_pushes.wait_for(kind="endpoint", id=far_kiosk.id, presence="online")
        await live.connect_kiosk()
        await clerk_pushes.wait_for(kind="endpoint", id=live.demo.endpoint_id, presence="online")
        await admin_pushes.wait_for(kind="endpoint", id=live.demo.endpoint_id, presence="online")
        assert all(p["id"] != far_kiosk.id for p in clerk_pushes.items)
        interpreter = await live.connect_user("tulkki")
        await clerk_pushes.wait_for(kind="user", id=live.demo.user_ids["tulkki"], online=True)
        await interpreter.disconnect()


async def test_presence_survives_a_restart(tmp_path: Path) -> None:
    async with make_live_service(tmp_path) as live:
        ids = live.demo.user_ids
        endpoint_id = live.demo.endpoint_id
        expert = await live.connect_user("rakennus")
        assert (await expert.call("presence:set", {"status": "away"}))["ok"] is True
        interpreter = await live.connect_user("tulkki")
        assert (await interpreter.call("presence:set", {"status": "busy"}))["ok"] is True
        await live.connect_kiosk()
        await asyncio.sleep(0.1)
    # Same data folder, new process state.
    async with make_live_service(tmp_path) as live:
        snapshot = await presence_snapshot(live.services)
        assert entry(snapshot, "user", ids["rakennus"])["status"] == "away"
        assert entry(snapshot, "user", ids["tulkki"])["status"] == "busy"
        # Nobody is connected to a freshly started lone server.
        assert entry(snapshot, "user", ids["tulkki"])["online"] is False
        assert entry(snapshot, "endpoint", endpoint_id)["presence"] == "offline"
        observer = await live.connect_user("kela")
        pushes = Pushes(observer)
        await observer.call("presence:get", {})
        await live.connect_user("tulkki")
        await pushes.wait_for(kind="user", id=ids["tulkki"], online=True, status="busy")
        await live.connect_kiosk()
        await pushes.wait_for(kind="endpoint", id=endpoint_id, presence="online")


async def test_whole_service_on_postgresql(tmp_path: Path, fresh_postgres_url: str) -> None:
    async with make_live_service(tmp_path, database_url=fresh_postgres_url) as live:
        expert = await live.connect_user("kela", via_login=True)
        assert (await expert.call("presence:set", {"status": "busy"}))["ok"] is True
        kiosk = await live.connect_kiosk()
        assert (await kiosk.call("session:whoami", {}))["principal"]["kind"] == "endpoint"
        kela = live.demo.user_ids["kela"]
    async with make_live_service(tmp_path, database_url=fresh_postgres_url) as live:
        assert live.demo.user_ids["kela"] == kela  # demo seeding found the same rows
        snapshot = await presence_snapshot(live.services)
        assert entry(snapshot, "user", kela)["status"] == "busy"
