"""Calls over socket.io with the real in-process relay and real aiortc peers on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from signaling.flow.calls import CallRelayListener, end_call, participant_for
from signaling.flow.flow_common import FlowError
from signaling.flow.queues import take_next, take_walk_in_ticket
from signaling.store.flow_models import Call, CallParticipant
from tests.signaling.call_support import CallPeer, eventually, face, start_call
from tests.signaling.flow_support import (  # noqa: F401 (fixtures)
    T0,
    World,
    call,
    extra_kiosk,
    flow_engine_fixture,
    flow_sessions_fixture,
    world_fixture,
)
from tests.support.service import LiveService, make_live_service


@pytest_asyncio.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveService]:
    """The whole service; create_app constructs and starts its relay."""
    async with make_live_service(tmp_path) as service:
        assert service.services.relay is not None
        yield service


@pytest.mark.slow
async def test_kiosk_and_expert_see_each_other_through_the_relay(
    live: LiveService,
) -> None:
    kiosk_sio, expert_sio, call_id = await start_call(live)
    kiosk, expert = CallPeer(kiosk_sio, call_id, face()), CallPeer(expert_sio, call_id, face())
    try:
        # Answer before join: refused, nothing changes.
        early = await call(kiosk_sio, "call:answer", {"call_id": call_id, "sdp": "v=0"})
        assert (early["error"]["code"], early["error"]["reason"]) == ("conflict", "not_joined")

        joined = await kiosk.join()
        assert joined["participant_id"] == f"endpoint-{live.demo.endpoint_id}"
        assert joined["ice_servers"] == []
        await expert.join()
        kela_id = live.demo.user_ids["kela"]
        # Each side receives the other's camera (the kiosk through a renegotiation offer).
        await eventually(lambda: (f"user-{kela_id}", "camera") in kiosk.remote_sources(), 20)
        await eventually(
            lambda: (joined["participant_id"], "camera") in expert.remote_sources(), 20
        )
        track = next(t for t, m in kiosk.client.remote_tracks if m.get("source") == "camera")
        frame = await asyncio.wait_for(track.recv(), 20)
        assert frame.width > 0
        assert not kiosk.answer_errors and not expert.answer_errors

        synced = await call(kiosk_sio, "flow:sync")
        assert synced["call"]["id"] == call_id
        connected = {p["role"]: p["connected"] for p in synced["call"]["participants"]}
        assert connected == {"customer": True, "expert": True}

        ended_pushes: list[dict[str, Any]] = []
        kiosk_sio.on("call:ended", lambda data: ended_pushes.append(data))
        ended = await call(expert_sio, "call:end", {"call_id": call_id})
        assert ended["ok"] and ended["call"]["status"] == "ended"
        await eventually(lambda: bool(ended_pushes))
        twice = await call(expert_sio, "call:end", {"call_id": call_id})
        assert (twice["error"]["code"], twice["error"]["reason"]) == ("conflict", "call_ended")
        late = await call(kiosk_sio, "call:join", {"call_id": call_id})
        assert late["error"]["reason"] == "call_ended"
    finally:
        await kiosk.close()
        await expert.close()


async def test_a_screen_is_published_and_unpublished(live: LiveService) -> None:
    """The expert's screen (aiortc stands in for the browser): the kiosk is sent it, then, after
    `call:unpublish`, offered it no more; garbage and sources a role may not publish are
    refused and change nothing."""
    kiosk_sio, expert_sio, call_id = await start_call(live)
    screen = {**face(), "screen": face()["camera"]}
    kiosk, expert = CallPeer(kiosk_sio, call_id, face()), CallPeer(expert_sio, call_id, screen)
    try:
        early = await call(expert_sio, "call:unpublish", {"call_id": call_id, "source": "screen"})
        assert (early["error"]["code"], early["error"]["reason"]) == ("conflict", "not_joined")
        await kiosk.join()
        await expert.join()
        kela = f"user-{live.demo.user_ids['kela']}"
        await eventually(lambda: (kela, "camera") in kiosk.remote_sources(), 20)
        for bad in ({"call_id": call_id, "source": "microphone"}, {"call_id": call_id},
                    {"call_id": "x", "source": "screen"}):
            refused = await call(expert_sio, "call:unpublish", bad)
            assert refused["error"]["code"] == "invalid", refused
        # The camera goes with call:join; it is not a source one (un)publishes by event.
        refused = await call(kiosk_sio, "call:unpublish", {"call_id": call_id, "source": "camera"})
        assert refused["error"]["code"] == "invalid", refused
        assert (await call(expert_sio, "call:publish", {"call_id": call_id, "source": "screen"}))[
            "ok"]
        await eventually(lambda: (kela, "screen") in kiosk.remote_sources(), 20)
        assert (await call(expert_sio, "call:unpublish", {"call_id": call_id, "source": "screen"}))[
            "ok"]
        await eventually(
            lambda: (kela, "screen") not in {
                (t["participant_id"], t["source"])
                for t in kiosk.offers[-1]["tracks"] if t["direction"] == "recv"
            },
            10,
        )
        # The call goes on: the expert's camera still comes.
        assert (kela, "camera") in {
            (t["participant_id"], t["source"])
            for t in kiosk.offers[-1]["tracks"] if t["direction"] == "recv"
        }
        assert not kiosk.answer_errors and not expert.answer_errors
    finally:
        await kiosk.close()
        await expert.close()


async def test_only_participants_join_and_only_the_expert_ends(live: LiveService) -> None:
    _kiosk_sio, expert_sio, call_id = await start_call(live)
    other_expert = await live.connect_user("rakennus")
    interpreter = await live.connect_user("tulkki")
    for sio in (other_expert, interpreter):
        refused = await call(sio, "call:join", {"call_id": call_id})
        assert (refused["error"]["code"], refused["error"]["reason"]) == (
            "forbidden",
            "not_participant",
        )
    refused = await call(other_expert, "call:end", {"call_id": call_id})
    assert refused["error"]["reason"] == "not_your_call"
    # The call's own kiosk may end it ("End call"); another kiosk of the office may not.
    other_kiosk = await extra_kiosk(live)
    refused = await call(other_kiosk, "call:end", {"call_id": call_id})
    assert (refused["error"]["code"], refused["error"]["reason"]) == ("forbidden", "not_your_call")
    missing = await call(expert_sio, "call:join", {"call_id": 999})
    assert missing["error"]["code"] == "not_found"
    garbage = await call(expert_sio, "call:join", {"call_id": "x", "extra": 1})
    assert garbage["error"]["code"] == "invalid"
    async with live.services.sessions() as session:
        row = await session.get(Call, call_id)
        assert row is not None and row.status == "active"
    admin = await live.connect_user("admin")
    ended = await call(admin, "call:end", {"call_id": call_id})
    assert ended["ok"] and ended["call"]["end_reason"] == "ended_by_admin"


async def test_rejoin_replaces_the_previous_session(live: LiveService) -> None:
    kiosk_sio, _expert_sio, call_id = await start_call(live)
    first = await call(kiosk_sio, "call:join", {"call_id": call_id})
    assert first["ok"], first
    replaced: list[dict[str, Any]] = []
    kiosk_sio.on("call:replaced", lambda data: replaced.append(data))
    reloaded = await live.connect_kiosk()  # the page reloaded in another tab
    synced = await call(reloaded, "flow:sync")
    assert synced["call"]["id"] == call_id
    second = await call(reloaded, "call:join", {"call_id": call_id})
    assert second["ok"] and second["participant_id"] == first["participant_id"]
    await eventually(lambda: replaced == [{"call_id": call_id}])
    # The old tab no longer holds the session.
    stale = await call(kiosk_sio, "call:answer", {"call_id": call_id, "sdp": "v=0"})
    assert stale["error"]["reason"] == "not_joined"


async def test_document_camera_and_relay_departure(live: LiveService) -> None:
    _kiosk, expert_sio, call_id = await start_call(live)
    agent = await live.connect_kiosk()  # the office's endpoint agent
    joined = await call(agent, "call:join", {"call_id": call_id, "device": "document_camera"})
    assert joined["ok"], joined
    assert joined["participant_id"] == f"doccam-{live.demo.endpoint_id}"
    assert [t["source"] for t in joined["offer"]["tracks"] if t["direction"] == "send"] == [
        "document"
    ]
    refused = await call(agent, "call:publish", {"call_id": call_id, "source": "screen"})
    assert refused["error"]["code"] == "forbidden"

    await call(expert_sio, "call:join", {"call_id": call_id})
    pushes: list[dict[str, Any]] = []
    expert_sio.on("call:participants", lambda data: pushes.append(data))
    listener = live.services.extras["call_relay_listener"]
    assert isinstance(listener, CallRelayListener)
    await listener.on_participant_gone(f"call-{call_id}", joined["participant_id"], "timeout")
    await eventually(lambda: bool(pushes))
    gone = {p["participant_id"]: p["connected"] for p in pushes[-1]["participants"]}
    assert gone[joined["participant_id"]] is False
    # The call goes on.
    async with live.services.sessions() as session:
        row = await session.get(Call, call_id)
        assert row is not None and row.status == "active"


async def test_participants_are_decided_by_the_server(world: World) -> None:
    async with world.sessions() as session:
        await take_walk_in_ticket(session, world.kiosk, "kela", "fin", T0)
        await session.commit()
        _ticket, created = await take_next(session, world.expert, None, None, T0)
    async with world.sessions() as session:
        created_call = await session.get(Call, created.id)
        assert created_call is not None
        assert (await participant_for(session, created_call, world.kiosk)).role == "customer"
        assert (await participant_for(session, created_call, world.expert)).role == "expert"
        for stranger in (world.kiosk2, world.expert2, world.interpreter):
            with pytest.raises(FlowError) as caught:
                await participant_for(session, created_call, stranger)
            assert caught.value.reason == "not_participant"
        # A document camera is the call's own kiosk's device: another kiosk of the office
        # (or of another office) may not join as one, nor find one without joining.
        for stranger in (world.kiosk2, world.far_kiosk):
            with pytest.raises(FlowError) as caught:
                await participant_for(
                    session, created_call, stranger, "document_camera", create=True
                )
            assert caught.value.reason == "not_participant"
        with pytest.raises(FlowError) as caught:
            await participant_for(session, created_call, world.kiosk, "document_camera")
        assert caught.value.reason == "not_joined"
        camera = await participant_for(
            session, created_call, world.kiosk, "document_camera", create=True
        )
        assert camera.participant_id == f"doccam-{world.kiosk.id}"
        await end_call(session, created_call, T0)
        await session.commit()
        rows = (
            await session.execute(
                select(CallParticipant).where(CallParticipant.call_id == created.id)
            )
        ).scalars()
        assert not any(p.connected for p in rows)
