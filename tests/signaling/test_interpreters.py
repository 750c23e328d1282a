"""The interpreting ring: who is alerted, first accept wins, withdrawals (the winner's consoles
hear none, on whichever process they are; his other consoles drop the ring quietly), leaving."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from signaling.flow.calls import end_call
from signaling.flow.flow_common import FlowError, participant_view, participants_of
from signaling.flow.interpreters import (
    accept_request,
    cancel_request,
    request_interpreter,
    ringing_for_interpreter,
)
from signaling.flow.queues import take_next, take_walk_in_ticket
from signaling.store.flow_models import Call
from signaling.store.models import User, UserLanguage
from tests.signaling.flow_support import (  # noqa: F401 (fixtures)
    T0,
    World,
    call,
    flow_engine_fixture,
    flow_sessions_fixture,
    world_fixture,
)
from tests.signaling.test_presence_lease import (
    drop_channel_keys,
    redis_client,  # noqa: F401 (fixture)
    shared_settings,
)
from tests.support.cluster import wait_until
from tests.support.service import LiveService, make_live_service


async def active_call(world: World, kiosk: str = "kiosk", expert: str = "expert") -> int:
    async with world.sessions() as session:
        await take_walk_in_ticket(session, getattr(world, kiosk), "kela", "fin", T0)
        await session.commit()
        _ticket, created = await take_next(session, getattr(world, expert), None, None, T0)
        return created.id


async def test_available_interpreters_of_the_language_are_alerted(world: World) -> None:
    call_id = await active_call(world)
    async with world.sessions() as session:
        await session.execute(
            update(User).where(User.id == world.interpreter2.id).values(presence="busy")
        )
        await session.commit()
    async with world.sessions() as session:
        request, alerted = await request_interpreter(session, world.expert, call_id, "fse", T0)
    assert alerted == [world.interpreter.id]
    assert request.status == "ringing" and request.requested_by_name == world.expert.name
    async with world.sessions() as session:
        with pytest.raises(FlowError) as caught:
            await request_interpreter(session, world.clerk, call_id, "fse", T0)
    assert caught.value.reason == "already_ringing"
    async with world.sessions() as session:
        _r, arabic = await request_interpreter(session, world.clerk, call_id, "ara", T0)
    assert sorted(arabic) == sorted([world.interpreter.id, world.arabic.id])
    async with world.sessions() as session:
        pending = await ringing_for_interpreter(session, world.interpreter2)
    assert [p["language"] for p in pending] == ["fse"] and pending[0]["sign_language"]


async def test_only_the_calls_expert_or_its_office_clerk_may_ask(world: World) -> None:
    call_id = await active_call(world)
    for stranger in (world.expert2, world.vero_expert):
        async with world.sessions() as session:
            with pytest.raises(FlowError) as caught:
                await request_interpreter(session, stranger, call_id, "fse", T0)
        assert caught.value.code == "forbidden"
    far_call = await active_call(world, "far_kiosk", "expert2")
    async with world.sessions() as session:
        with pytest.raises(FlowError) as caught:
            await request_interpreter(session, world.clerk, far_call, "fse", T0)
    assert caught.value.code == "forbidden"


async def test_first_accept_wins(world: World) -> None:
    call_id = await active_call(world)
    async with world.sessions() as session:
        request, _ = await request_interpreter(session, world.expert, call_id, "fse", T0)

    async def accept(name: str) -> str:
        async with world.sessions() as session:
            try:
                await accept_request(session, getattr(world, name), request.id, T0)
                return name
            except FlowError as exc:
                return str(exc.reason)

    results = await asyncio.gather(accept("interpreter"), accept("interpreter2"))
    assert sorted(results) in (
        sorted(["interpreter", "taken"]),
        sorted(["interpreter2", "taken"]),
    ), results
    async with world.sessions() as session:
        participants = [participant_view(p) for p in await participants_of(session, call_id)]
    interpreters = [p for p in participants if p["role"] == "interpreter"]
    assert len(interpreters) == 1
    assert interpreters[0]["sign_language"] and interpreters[0]["spotlight"]
    assert interpreters[0]["language"] == "fse"
    # Accepting an alert already taken: conflict, nothing changes.
    loser = "interpreter2" if "interpreter" in results else "interpreter"
    async with world.sessions() as session:
        with pytest.raises(FlowError) as caught:
            await accept_request(session, getattr(world, loser), request.id, T0)
    assert caught.value.reason == "taken"
    async with world.sessions() as session:
        assert len(await participants_of(session, call_id)) == 3


async def test_accept_refusals(world: World) -> None:
    call_id = await active_call(world)
    async with world.sessions() as session:
        request, _ = await request_interpreter(session, world.expert, call_id, "fse", T0)
    async with world.sessions() as session:
        with pytest.raises(FlowError) as caught:
            await accept_request(session, world.arabic, request.id, T0)
    assert caught.value.reason == "language"
    async with world.sessions() as session:
        await cancel_request(session, world.expert, request.id, T0)
    async with world.sessions() as session:
        with pytest.raises(FlowError) as caught:
            await accept_request(session, world.interpreter, request.id, T0)
    assert caught.value.reason == "cancelled"
    async with world.sessions() as session:
        with pytest.raises(FlowError) as caught:
            await cancel_request(session, world.expert, request.id, T0)
    assert caught.value.reason == "not_ringing"
    async with world.sessions() as session:
        again, _ = await request_interpreter(session, world.expert, call_id, "fse", T0)
        row = await session.get(Call, call_id)
        assert row is not None
        withdrawn = await end_call(session, row, T0)
        await session.commit()
    assert [r.id for r in withdrawn] == [again.id]
    async with world.sessions() as session:
        with pytest.raises(FlowError) as caught:
            await accept_request(session, world.interpreter, again.id, T0)
    assert caught.value.reason == "cancelled"
    async with world.sessions() as session:
        with pytest.raises(FlowError) as caught:
            await request_interpreter(session, world.expert, call_id, "fse", T0)
    assert caught.value.reason == "call_ended"


async def test_an_interpreter_in_a_call_is_not_alerted(world: World) -> None:
    first = await active_call(world)
    async with world.sessions() as session:
        request, _ = await request_interpreter(session, world.expert, first, "fse", T0)
        await accept_request(session, world.interpreter2, request.id, T0)
    second = await active_call(world, "kiosk2", "expert2")
    async with world.sessions() as session:
        _r, alerted = await request_interpreter(session, world.expert2, second, "fse", T0)
    assert alerted == [world.interpreter.id]


async def _second_interpreter(live: LiveService) -> str:
    async with live.services.sessions() as session:
        session.add(
            User(
                username="tulkki2",
                display_name="Toinen Tulkki",
                role="interpreter",
                password_hash="x",
                languages=[UserLanguage(code="fse")],
            )
        )
        await session.commit()
    return "tulkki2"


async def test_ring_over_socketio(live_service: LiveService) -> None:
    kiosk = await live_service.connect_kiosk()
    expert = await live_service.connect_user("kela")
    first = await live_service.connect_user("tulkki")
    second = await live_service.connect_user(await _second_interpreter(live_service))
    pushes: dict[str, list[Any]] = {"alert1": [], "alert2": [], "withdrawn2": [], "update": []}
    first.on("interpreter:alert", lambda d: pushes["alert1"].append(d))
    second.on("interpreter:alert", lambda d: pushes["alert2"].append(d))
    second.on("interpreter:withdrawn", lambda d: pushes["withdrawn2"].append(d))
    expert.on("interpreter:update", lambda d: pushes["update"].append(d))
    for client in (kiosk, expert, first, second):
        assert (await call(client, "flow:sync"))["ok"]
    await call(kiosk, "ticket:take", {"authority": "kela", "language": "fin"})
    call_id = (await call(expert, "queue:take_next", {}))["call"]["id"]

    refused = await call(first, "interpreter:request", {"call_id": call_id, "language": "fse"})
    assert refused["error"]["code"] == "forbidden"  # an interpreter cannot ring
    asked = await call(expert, "interpreter:request", {"call_id": call_id, "language": "fse"})
    assert asked["ok"] and asked["alerted"] == 2, asked
    for _ in range(100):
        if pushes["alert1"] and pushes["alert2"]:
            break
        await asyncio.sleep(0.05)
    request_id = pushes["alert1"][0]["request"]["id"]
    assert pushes["alert2"][0]["request"]["id"] == request_id

    accepted = await call(first, "interpreter:accept", {"request_id": request_id})
    assert accepted["ok"], accepted
    late = await call(second, "interpreter:accept", {"request_id": request_id})
    assert (late["error"]["code"], late["error"]["reason"]) == ("conflict", "taken")
    for _ in range(100):
        if pushes["withdrawn2"]:
            break
        await asyncio.sleep(0.05)
    assert pushes["withdrawn2"] == [{"request_id": request_id, "reason": "taken"}]
    assert any(u["request"]["status"] == "accepted" for u in pushes["update"])

    sync = await call(first, "flow:sync")
    assert sync["call"]["id"] == call_id
    interp = next(p for p in sync["call"]["participants"] if p["role"] == "interpreter")
    assert interp["sign_language"] and interp["spotlight"]

    left = await call(first, "call:leave", {"call_id": call_id})
    assert left["ok"], left
    back = await call(first, "call:join", {"call_id": call_id})
    assert back["error"]["reason"] == "left"
    state = await call(expert, "flow:sync")
    assert state["call"]["status"] == "active"
    interp = next(p for p in state["call"]["participants"] if p["role"] == "interpreter")
    assert interp["left"] and not interp["spotlight"]


async def test_the_winner_hears_no_withdrawal_on_another_process(
    tmp_path: Path,
    redis_client: Any,  # noqa: F811
) -> None:
    # Two processes on one database and Redis: the interpreter has a console on each and
    # accepts on the first; the other interpreter (on the second) hears "taken", he does not.
    shared = shared_settings(f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}")
    try:
        async with (
            make_live_service(tmp_path / "a", **shared) as a,
            make_live_service(tmp_path / "b", **shared) as b,
        ):
            second_name = await _second_interpreter(a)
            kiosk = await a.connect_kiosk()
            expert = await a.connect_user("kela")
            winner_here = await a.connect_user("tulkki")
            winner_there = await b.connect_user("tulkki")
            other = await b.connect_user(second_name)
            names = ("here", "there", "other", "alerts", "quiet_here", "quiet_there", "quiet_other")
            heard: dict[str, list[Any]] = {name: [] for name in names}
            winner_here.on("interpreter:accepted_elsewhere", heard["quiet_here"].append)
            winner_there.on("interpreter:accepted_elsewhere", heard["quiet_there"].append)
            other.on("interpreter:accepted_elsewhere", heard["quiet_other"].append)
            winner_here.on("interpreter:withdrawn", heard["here"].append)
            winner_there.on("interpreter:withdrawn", heard["there"].append)
            other.on("interpreter:withdrawn", heard["other"].append)
            winner_there.on("interpreter:alert", heard["alerts"].append)
            for client in (kiosk, expert, winner_here, winner_there, other):
                assert (await call(client, "flow:sync"))["ok"]
            await call(kiosk, "ticket:take", {"authority": "kela", "language": "fin"})
            call_id = (await call(expert, "queue:take_next", {}))["call"]["id"]
            ring = {"call_id": call_id, "language": "fse"}
            asked = await call(expert, "interpreter:request", ring)
            assert asked["ok"] and asked["alerted"] == 2, asked
            request_id = asked["request"]["id"]
            await wait_until(
                lambda: bool(heard["alerts"]), 5.0, "the ring never reached his second console"
            )

            accepted = await call(winner_here, "interpreter:accept", {"request_id": request_id})
            assert accepted["ok"], accepted
            await wait_until(lambda: bool(heard["other"]), 5.0)
            assert heard["other"] == [{"request_id": request_id, "reason": "taken"}]
            # One emit reached both sockets on the second process: had it been meant for
            # his console there, it would have arrived with the other's.
            await asyncio.sleep(0.2)
            assert heard["there"] == [] and heard["here"] == []
            # His console on the second process drops the ring quietly; the accepting one
            # (skipped by sid, which the pub/sub manager carries to every process) hears nothing.
            assert heard["quiet_there"] == [{"request_id": request_id}]
            assert heard["quiet_here"] == [] and heard["quiet_other"] == []
    finally:
        await drop_channel_keys(redis_client, shared["redis_channel"])


async def test_his_other_console_drops_the_ring_he_accepted(live_service: LiveService) -> None:
    # Two consoles (tabs) of one interpreter on one process, and another interpreter: he
    # accepts in one tab; the other tab hears the quiet `accepted_elsewhere`, not "taken".
    kiosk = await live_service.connect_kiosk()
    expert = await live_service.connect_user("kela")
    accepting = await live_service.connect_user("tulkki")
    other_tab = await live_service.connect_user("tulkki")
    other = await live_service.connect_user(await _second_interpreter(live_service))
    heard: dict[str, list[Any]] = {
        name: [] for name in ("alerts", "quiet", "quiet_accepting", "quiet_other", "taken")
    }
    other_tab.on("interpreter:alert", heard["alerts"].append)
    other_tab.on("interpreter:accepted_elsewhere", heard["quiet"].append)
    accepting.on("interpreter:accepted_elsewhere", heard["quiet_accepting"].append)
    other.on("interpreter:accepted_elsewhere", heard["quiet_other"].append)
    for client in (accepting, other_tab, other):
        client.on("interpreter:withdrawn", lambda d, c=client: heard["taken"].append((c, d)))
    for client in (kiosk, expert, accepting, other_tab, other):
        assert (await call(client, "flow:sync"))["ok"]
    await call(kiosk, "ticket:take", {"authority": "kela", "language": "fin"})
    call_id = (await call(expert, "queue:take_next", {}))["call"]["id"]
    asked = await call(expert, "interpreter:request", {"call_id": call_id, "language": "fse"})
    assert asked["ok"] and asked["alerted"] == 2, asked
    request_id = asked["request"]["id"]
    await wait_until(lambda: bool(heard["alerts"]), 5.0, "the ring never reached his second tab")

    accepted = await call(accepting, "interpreter:accept", {"request_id": request_id})
    assert accepted["ok"], accepted
    await wait_until(lambda: bool(heard["quiet"] and heard["taken"]), 5.0)
    await asyncio.sleep(0.2)  # anything meant for the accepting tab would be here by now
    assert heard["quiet"] == [{"request_id": request_id}]
    assert heard["quiet_accepting"] == [] and heard["quiet_other"] == []
    assert heard["taken"] == [(other, {"request_id": request_id, "reason": "taken"})]
