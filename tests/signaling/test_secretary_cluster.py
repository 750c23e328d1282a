"""Secretary alerts in the database: two signaling servers sharing one database (SQLite and
PostgreSQL) and a real Redis see the same alerts; one open alert per kiosk holds with
presses at once on both servers; an open alert survives a restart; answered alerts are pruned.

The two servers run in the test's process, each with its own app, port, engine and sockets,
sharing nothing but the database and Redis (issue 14: "a secretary alert raised on A was
refused on C").
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import socketio
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from signaling.db import utcnow
from signaling.flow.flow_common import clerks_room
from signaling.flow.secretary import KEEP_ANSWERED, raise_alert
from signaling.store.flow_models import SecretaryAlert
from signaling.transport import rooms
from tests.signaling.call_support import eventually
from tests.signaling.test_redis import REDIS_URL, redis_reachable
from tests.support.service import LiveService, make_live_service

pytestmark = pytest.mark.timeout(120)


@contextlib.asynccontextmanager
async def two_servers(
    tmp_path: Path, database_url: str
) -> AsyncIterator[tuple[LiveService, LiveService]]:
    if not await redis_reachable():
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    shared = {
        "redis_url": REDIS_URL,
        # A channel of our own: other test runs may use the same Redis at the same time.
        "redis_channel": f"etapalvelu-test-{secrets.token_hex(6)}",
        "database_url": database_url,
    }
    async with (
        make_live_service(tmp_path / "a", **shared) as first,
        make_live_service(tmp_path / "b", **shared) as second,
    ):
        yield first, second


async def pushes_cross(sender: LiveService, receiver: socketio.AsyncClient, room: str) -> None:
    """Publish from `sender` to `room` until `receiver` (a socket on another server) hears it:
    a server subscribes to Redis when its first socket arrives, and an alert pushed before
    that would be lost for reasons that are not the feature's."""
    heard: list[Any] = []
    receiver.on("test:ping", heard.append)
    for _ in range(100):
        await sender.services.sio.emit("test:ping", {}, room=room)
        await asyncio.sleep(0.1)
        if heard:
            return
    raise AssertionError(f"no cross-server delivery to {room}")


async def ack(client: socketio.AsyncClient, event: str, data: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = await client.call(event, data, timeout=10)
    return answer


async def open_rows(live: LiveService, endpoint_id: int) -> list[SecretaryAlert]:
    async with live.services.sessions() as session:
        found = await session.execute(
            select(SecretaryAlert).where(
                SecretaryAlert.endpoint_id == endpoint_id, SecretaryAlert.acknowledged_at.is_(None)
            )
        )
        return list(found.scalars())


async def test_alert_raised_on_one_server_is_answered_on_the_other(
    tmp_path: Path, database_url: str
) -> None:
    async with two_servers(tmp_path, database_url) as (first, second):
        kiosk = await first.connect_kiosk()
        clerk = await second.connect_user("sihteeri")
        other_clerk = await first.connect_user("sihteeri")  # the same office, on server A
        office, endpoint = first.demo.office_id, first.demo.endpoint_id
        for client in (kiosk, clerk, other_clerk):
            assert (await ack(client, "flow:sync", {}))["ok"]
        await pushes_cross(first, clerk, clerks_room(office))
        await pushes_cross(second, kiosk, rooms.endpoint(endpoint))

        alerts: list[dict[str, Any]] = []
        answers: list[dict[str, Any]] = []
        clerk.on("secretary:alert", alerts.append)
        kiosk.on("secretary:acknowledged", answers.append)

        raised = await ack(kiosk, "secretary:call", {})
        assert raised["ok"], raised
        alert = raised["alert"]
        assert alert["endpoint_id"] == endpoint and alert["office_id"] == office
        assert alert["acknowledged_by"] is None and alert["acknowledged_at"] is None
        await eventually(lambda: bool(alerts))
        assert alerts[0] == {"alert": alert}

        # Both servers answer from the database: the clerk's and the kiosk's sync.
        synced = await ack(clerk, "flow:sync", {})
        assert synced["secretary_alerts"] == [alert]
        assert (await ack(kiosk, "flow:sync", {}))["secretary_alert"] == alert
        # Pressing again (on A) returns the open alert, without a second alert.
        assert (await ack(kiosk, "secretary:call", {}))["alert"] == alert

        missing = await ack(clerk, "secretary:acknowledge", {"alert_id": alert["id"] + 1000})
        assert missing["error"]["code"] == "not_found"
        done = await ack(clerk, "secretary:acknowledge", {"alert_id": alert["id"]})
        assert done["ok"], done
        assert done["alert"]["acknowledged_by"] == {
            "id": first.demo.user_ids["sihteeri"],
            "name": "Sanna Palvelusihteeri",
        }
        assert done["alert"]["acknowledged_at"] is not None
        # The other clerk, on the other server, hears "already answered".
        late = await ack(other_clerk, "secretary:acknowledge", {"alert_id": alert["id"]})
        assert late["error"]["code"] == "conflict"
        assert late["error"]["reason"] == "already_acknowledged"

        await eventually(lambda: bool(answers))
        assert answers[0] == {"alert": done["alert"]}
        assert (await ack(clerk, "flow:sync", {}))["secretary_alerts"] == []
        assert (await ack(kiosk, "flow:sync", {}))["secretary_alert"] is None
        await asyncio.sleep(0.3)
        assert len(alerts) == 1  # the second press pushed nothing


async def test_presses_at_once_on_two_servers_make_one_alert(
    tmp_path: Path, database_url: str
) -> None:
    async with two_servers(tmp_path, database_url) as (first, second):
        endpoint, office = first.demo.endpoint_id, first.demo.office_id
        clerk = await first.connect_user("sihteeri")
        assert (await ack(clerk, "flow:sync", {}))["ok"]
        kiosk_a = await first.connect_kiosk()
        kiosk_b = await second.connect_kiosk()
        clerk_b = await second.connect_user("sihteeri")
        await pushes_cross(second, clerk, clerks_room(office))
        alerts: list[dict[str, Any]] = []
        clerk.on("secretary:alert", alerts.append)

        # The two sockets of one kiosk, one on each server, press at the same moment.
        both = await asyncio.gather(
            ack(kiosk_a, "secretary:call", {}), ack(kiosk_b, "secretary:call", {})
        )
        assert all(answer["ok"] for answer in both), both
        assert both[0]["alert"]["id"] == both[1]["alert"]["id"]
        assert len(await open_rows(first, endpoint)) == 1
        await eventually(lambda: bool(alerts))
        await asyncio.sleep(0.3)
        assert len(alerts) == 1, alerts
        done = await ack(clerk, "secretary:acknowledge", {"alert_id": both[0]["alert"]["id"]})
        assert done["ok"], done

        # Many presses at once through both servers' engines: one insert wins each round.
        for _ in range(3):
            results = await asyncio.gather(
                *(
                    raise_alert(live.services, endpoint, office)
                    for live in (first, second, first, second, first, second)
                )
            )
            assert len({alert["id"] for alert, _ in results}) == 1, results
            assert sum(created for _, created in results) == 1, results
            rows = await open_rows(second, endpoint)
            assert [row.id for row in rows] == [results[0][0]["id"]]
            # Two clerks, one on each server, answer at the same moment: one wins.
            answers = await asyncio.gather(
                *(
                    ack(c, "secretary:acknowledge", {"alert_id": rows[0].id})
                    for c in (clerk, clerk_b)
                )
            )
            assert sorted(bool(a.get("ok")) for a in answers) == [False, True], answers
            lost = next(a for a in answers if not a.get("ok"))
            assert lost["error"]["reason"] == "already_acknowledged"


async def test_one_open_alert_per_kiosk_is_a_database_rule(
    tmp_path: Path, database_url: str
) -> None:
    async with make_live_service(tmp_path, database_url=database_url) as live:
        endpoint, office = live.demo.endpoint_id, live.demo.office_id
        now = utcnow()
        async with live.services.sessions() as session:
            session.add(
                SecretaryAlert(
                    office_id=office,
                    endpoint_id=endpoint,
                    endpoint_name="k",
                    raised_at=now,
                    acknowledged_at=now,
                )
            )
            session.add(
                SecretaryAlert(
                    office_id=office, endpoint_id=endpoint, endpoint_name="k", raised_at=now
                )
            )
            await session.commit()  # an answered and an open one: allowed
        async with live.services.sessions() as session:
            session.add(
                SecretaryAlert(
                    office_id=office, endpoint_id=endpoint, endpoint_name="k", raised_at=now
                )
            )
            with pytest.raises(IntegrityError):
                await session.commit()
        assert len(await open_rows(live, endpoint)) == 1


async def test_open_alert_survives_a_restart(tmp_path: Path, database_url: str) -> None:
    settings = {"database_url": database_url}
    async with make_live_service(tmp_path, **settings) as first:
        kiosk = await first.connect_kiosk()
        raised = await ack(kiosk, "secretary:call", {})
        assert raised["ok"], raised
    async with make_live_service(tmp_path, **settings) as second:  # new process state
        kiosk = await second.connect_kiosk()
        clerk = await second.connect_user("sihteeri")
        assert (await ack(kiosk, "flow:sync", {}))["secretary_alert"] == raised["alert"]
        assert (await ack(clerk, "flow:sync", {}))["secretary_alerts"] == [raised["alert"]]
        assert (await ack(kiosk, "secretary:call", {}))["alert"] == raised["alert"]
        done = await ack(clerk, "secretary:acknowledge", {"alert_id": raised["alert"]["id"]})
        assert done["ok"], done


async def test_answered_alerts_are_pruned_after_the_keep_time(
    tmp_path: Path, database_url: str
) -> None:
    async with make_live_service(tmp_path, database_url=database_url) as live:
        endpoint, office = live.demo.endpoint_id, live.demo.office_id
        now = utcnow()
        old_answer = now - KEEP_ANSWERED - timedelta(seconds=5)
        recent_answer = now - KEEP_ANSWERED + timedelta(minutes=1)
        async with live.services.sessions() as session:
            rows = [
                SecretaryAlert(
                    office_id=office,
                    endpoint_id=endpoint,
                    endpoint_name="k",
                    raised_at=answered - timedelta(minutes=1),
                    acknowledged_at=answered,
                    acknowledged_by=live.demo.user_ids["sihteeri"],
                    acknowledged_by_name="Sanna Palvelusihteeri",
                )
                for answered in (old_answer, recent_answer)
            ]
            session.add_all(rows)
            await session.commit()
            old_id, recent_id = rows[0].id, rows[1].id
        clerk = await live.connect_user("sihteeri")
        kiosk = await live.connect_kiosk()
        raised = await ack(kiosk, "secretary:call", {})  # a press prunes, as before
        assert raised["ok"], raised
        async with live.services.sessions() as session:
            ids = set((await session.execute(select(SecretaryAlert.id))).scalars())
        assert ids == {recent_id, raised["alert"]["id"]}
        gone = await ack(clerk, "secretary:acknowledge", {"alert_id": old_id})
        assert gone["error"]["code"] == "not_found"
        kept = await ack(clerk, "secretary:acknowledge", {"alert_id": recent_id})
        assert kept["error"]["reason"] == "already_acknowledged"

