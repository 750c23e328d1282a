"""Security review, finding 1: a document camera is the device of the kiosk that is in the call.

Another kiosk of the same office may not join a call as its "document camera" (it would have
received the customer's and the expert's audio and video) nor publish a document key in it;
the real document camera publishes only and is sent nothing; documents are never encrypted
to a device; and everyone in the call, the document camera too, is listed to the customer
and the expert. Everything real: the whole service on loopback, its relay, aiortc peers.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from typing import Any

import aiohttp
import pytest
import socketio
from aiortc.mediastreams import VideoStreamTrack
from sqlalchemy import select

from endpoint.document_channel import DocumentChannel, TransferError
from signaling.store.flow_models import CallParticipant, DocumentCallKey, DocumentTransfer
from tests.signaling import call_support
from tests.signaling.call_support import CallPeer, face, start_call
from tests.support.service import LiveService

ACK_TIMEOUT = 15.0
# Media through the relay on a loaded machine: wait longer than the shared default.
eventually = functools.partial(call_support.eventually, within=20.0)

DOCCAM = "document_camera"
PNG = b"\x89PNG\r\n\x1a\n" + hashlib.sha256(b"still").digest() * 2000
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 100
KEY = {"suite": 1, "public_key": "A" * 43}


async def ack_of(client: socketio.AsyncClient, event: str, data: dict[str, Any]) -> Any:
    return await client.call(event, data, timeout=15)


def directions(sdp: str) -> list[str]:
    names = ("sendonly", "sendrecv", "recvonly", "inactive")
    return [line.strip()[2:] for line in sdp.splitlines() if line.strip()[2:] in names]


async def enrol_second_kiosk(live: LiveService) -> tuple[int, socketio.AsyncClient]:
    """A second kiosk of the demo office, enrolled through the administrators' REST API."""
    token = await live.issue_token("admin")
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
        http.post(
            f"{live.base_url}/api/admin/endpoints",
            json={"office_id": live.demo.office_id, "name": "Kioski 2"},
        ) as response,
    ):
        body = await response.json()
        assert response.status == 201, body
    endpoint_id = int(body["item"]["id"])
    assert body["item"]["office_id"] == live.demo.office_id
    client = await live.connect({"endpoint_id": endpoint_id, "credential": body["credential"]})
    assert (await ack_of(client, "flow:sync", {}))["ok"]
    return endpoint_id, client


async def participant_rows(live: LiveService, call_id: int) -> list[tuple[str, str, bool]]:
    async with live.services.sessions() as session:
        rows = await session.execute(
            select(CallParticipant)
            .where(CallParticipant.call_id == call_id)
            .order_by(CallParticipant.id)
        )
        return [(p.participant_id, p.role, p.connected) for p in rows.scalars()]


async def relay_participants(live: LiveService, call_id: int) -> dict[str, Any]:
    stats = await live.services.relay.stats()
    room = stats["rooms"].get(f"call-{call_id}", {"participants": {}})
    return dict(room["participants"])


async def test_another_kiosk_of_the_office_cannot_be_a_document_camera(
    live_service: LiveService,
) -> None:
    live = live_service
    kiosk_sio, expert_sio, call_id = await start_call(live, ack_timeout=ACK_TIMEOUT)
    kiosk, expert = (
        CallPeer(kiosk_sio, call_id, face(), ACK_TIMEOUT),
        CallPeer(expert_sio, call_id, face(), ACK_TIMEOUT),
    )
    try:
        await kiosk.join()
        await expert.join()
        before_rows = await participant_rows(live, call_id)
        before_relay = sorted(await relay_participants(live, call_id))
        assert before_relay == sorted(p for p, _, _ in before_rows)

        other_id, other = await enrol_second_kiosk(live)
        pushes: list[tuple[str, Any]] = []
        for event in ("call:participants", "call:offer", "documents:keys", "call:started"):
            other.on(event, lambda data, event=event: pushes.append((event, data)))

        refusals = [
            await ack_of(other, "call:join", {"call_id": call_id, "device": DOCCAM}),
            await ack_of(other, "call:join", {"call_id": call_id}),
            await ack_of(
                other, "documents:key", {"call_id": call_id, "device": DOCCAM, "keys": [KEY]}
            ),
            await ack_of(other, "call:leave", {"call_id": call_id}),
            await ack_of(other, "document_camera:take_still", {"call_id": call_id}),
        ]
        for refused in refusals[:4]:
            assert refused["ok"] is False
            assert (refused["error"]["code"], refused["error"]["reason"]) == (
                "forbidden",
                "not_participant",
            ), refused
        assert refusals[4]["ok"] is False  # not even a role that may ask for stills

        # Nothing changed: no participant row, no relay session, no key, no room entered.
        assert await participant_rows(live, call_id) == before_rows
        assert sorted(await relay_participants(live, call_id)) == before_relay
        assert f"doccam-{other_id}" not in await relay_participants(live, call_id)
        async with live.services.sessions() as session:
            keys = (await session.scalars(select(DocumentCallKey.participant_id).where(
                DocumentCallKey.call_id == call_id))).all()
        assert not any(pid.endswith(f"-{other_id}") for pid in keys)
        # The call's own pushes do not reach it: it is in neither the call's nor its
        # documents' room.
        kiosk_docs = DocumentChannel(kiosk_sio, live.base_url, call_id)
        expert_docs = DocumentChannel(expert_sio, live.base_url, call_id)
        await kiosk_docs.start()
        await expert_docs.start()  # pushes documents:keys to the documents room
        assert (await ack_of(expert_sio, "call:leave", {"call_id": call_id}))["ok"]
        await expert.close()
        expert = CallPeer(expert_sio, call_id, face(), ACK_TIMEOUT)
        await expert.join()  # pushes call:participants to the call room
        await eventually(lambda: bool(kiosk_docs.peers.get(expert_docs.participant_id)))
        await asyncio.sleep(0.5)
        assert pushes == []
        await kiosk_docs.close()
        await expert_docs.close()
        for pid, _role, _connected in await participant_rows(live, call_id):
            assert pid in (
                f"endpoint-{live.demo.endpoint_id}",
                f"user-{live.demo.user_ids['kela']}",
            )
    finally:
        await kiosk.close()
        await expert.close()


async def test_the_calls_own_document_camera_publishes_only(live_service: LiveService) -> None:
    live = live_service
    kiosk_sio, expert_sio, call_id = await start_call(live, ack_timeout=ACK_TIMEOUT)
    kiosk, expert = (
        CallPeer(kiosk_sio, call_id, face(), ACK_TIMEOUT),
        CallPeer(expert_sio, call_id, face(), ACK_TIMEOUT),
    )
    agent_sio = await live.connect_kiosk()  # the agent logs in with the kiosk's credential
    camera = CallPeer(agent_sio, call_id, {"document": VideoStreamTrack()}, ACK_TIMEOUT)
    try:
        await kiosk.join()
        await expert.join()
        kela = f"user-{live.demo.user_ids['kela']}"
        customer = f"endpoint-{live.demo.endpoint_id}"
        await eventually(lambda: (kela, "camera") in kiosk.remote_sources())

        joined = await camera.join(device=DOCCAM)
        pid = joined["participant_id"]
        assert pid == f"doccam-{live.demo.endpoint_id}"
        # Its offer: its own document m-line (the relay receives), nothing of the others.
        first = camera.offers[0]
        assert [(t["source"], t["direction"]) for t in first["tracks"]] == [("document", "send")]
        assert "sendonly" not in directions(first["sdp"])
        assert "sendrecv" not in directions(first["sdp"])

        # The expert and the kiosk receive the document track; the camera receives nothing,
        # also after later renegotiations (the interpreter-less call changes: the expert
        # publishes his screen).
        await eventually(lambda: (pid, "document") in expert.remote_sources())
        await eventually(lambda: (pid, "document") in kiosk.remote_sources())
        published = await ack_of(
            expert_sio, "call:publish", {"call_id": call_id, "source": "screen"}
        )
        assert published["ok"], published
        await eventually(lambda: (kela, "screen") in kiosk.remote_sources())
        await asyncio.sleep(0.3)
        for offer in camera.offers:
            assert all(t["direction"] == "send" for t in offer["tracks"]), offer["tracks"]
            assert "sendonly" not in directions(offer["sdp"])
        assert camera.client.remote_tracks == []
        stats = (await relay_participants(live, call_id))[pid]
        assert stats["subscribe"] is False and stats["forwarded"] == []
        assert set(stats["published"]) == {"document"}
        others = await relay_participants(live, call_id)
        assert others[customer]["subscribe"] is True and others[kela]["subscribe"] is True
    finally:
        await camera.close()
        await kiosk.close()
        await expert.close()


async def test_documents_never_go_to_a_device(live_service: LiveService) -> None:
    live = live_service
    base = live.base_url
    kiosk_sio, expert_sio, call_id = await start_call(live, ack_timeout=ACK_TIMEOUT)
    agent_sio = await live.connect_kiosk()
    camera = CallPeer(agent_sio, call_id, {"document": VideoStreamTrack()}, ACK_TIMEOUT)
    kiosk = DocumentChannel(kiosk_sio, base, call_id)
    expert = DocumentChannel(expert_sio, base, call_id)
    stills = DocumentChannel(agent_sio, base, call_id, device=DOCCAM)
    try:
        # No document key for a document camera that has not joined the call.
        early = await ack_of(
            agent_sio, "documents:key", {"call_id": call_id, "device": DOCCAM, "keys": [KEY]}
        )
        assert (early["error"]["code"], early["error"]["reason"]) == ("forbidden", "not_joined")
        assert await participant_rows(live, call_id) == [
            (f"endpoint-{live.demo.endpoint_id}", "customer", False),
            (f"user-{live.demo.user_ids['kela']}", "expert", False),
        ]

        await camera.join(device=DOCCAM)
        await kiosk.start()
        await expert.start()
        await stills.start()  # the camera's key: to send stills, never to receive
        async with asyncio.timeout(10):
            await expert.wait_for_peer(stills.participant_id)
            await kiosk.wait_for_peer(stills.participant_id)
        assert stills.participant_id == f"doccam-{live.demo.endpoint_id}"
        assert expert.peers[stills.participant_id][1].role == DOCCAM

        # By default a document goes to the people of the call, never to the device.
        assert expert.default_recipients() == (kiosk.participant_id,)
        assert set(stills.default_recipients()) == {kiosk.participant_id, expert.participant_id}
        # Named explicitly, the server refuses it.
        with pytest.raises(TransferError) as caught:
            await expert.send(
                "paatos.pdf", PDF, recipients=[kiosk.participant_id, stills.participant_id]
            )
        assert caught.value.code == "device_recipient"
        offer = {
            "call_id": call_id,
            "recipients": [stills.participant_id],
            "suite": 1,
            "ciphertext_bytes": 2000,
            "sha256": "00" * 32,
            "size": 1000,
            "type": "image/png",
        }
        for sender in (expert_sio, kiosk_sio):
            refused = await ack_of(sender, "documents:offer", offer)
            assert (refused["error"]["code"], refused["error"]["reason"]) == (
                "forbidden",
                "device_recipient",
            ), refused
        # The camera sends stills, nothing else.
        with pytest.raises(TransferError) as caught:
            await stills.send("lomake.pdf", PDF)
        assert caught.value.code == "stills_only"
        async with live.services.sessions() as session:
            assert (await session.scalars(select(DocumentTransfer.id))).all() == []

        # A still reaches the kiosk and the expert; both confirm it (the kiosk and its camera
        # are one principal: the socket tells the recipient from the sender).
        sent = await stills.send("sivu.png", PNG)
        assert set(sent.recipients) == {kiosk.participant_id, expert.participant_id}
        async with asyncio.timeout(20):
            at_kiosk = await kiosk.receive()
            at_expert = await expert.receive()
            verdicts = await stills.wait_delivered(sent.transfer_id)
        assert at_kiosk.content == PNG and at_expert.content == PNG
        assert at_kiosk.sender.participant_id == stills.participant_id
        assert verdicts == {
            kiosk.participant_id: ("received", None),
            expert.participant_id: ("received", None),
        }
        assert stills.incoming.empty()
    finally:
        for channel in (kiosk, expert, stills):
            await channel.close()
        await camera.close()


@pytest.mark.browser
@pytest.mark.slow
async def test_kiosk_page_and_console_list_the_document_camera(
    browser: Any, live_service: LiveService
) -> None:
    from tests.expert_console.people import open_console, open_kiosk
    from tests.support.browser import screenshot

    live = live_service
    kiosk = await open_kiosk(browser, live)
    expert = await open_console(browser, live, "/expert", "kela")
    agent_sio = await live.connect_kiosk()
    camera: CallPeer | None = None
    try:
        await kiosk.page.click("button[data-authority=kela]")
        await kiosk.page.click("button[data-language=fin]")
        await expert.page.wait_for_selector("#queues td.num")
        await expert.page.click("#take-next")
        await expert.page.wait_for_selector("#view-call:not([hidden])")
        await kiosk.page.wait_for_selector("#screen-call:not([hidden])")
        synced = await ack_of(agent_sio, "flow:sync", {})
        call_id = int(synced["call"]["id"])
        camera = CallPeer(agent_sio, call_id, {"document": VideoStreamTrack()}, ACK_TIMEOUT)
        pid = (await camera.join(device=DOCCAM))["participant_id"]

        # What the pages are told (`call:participants`, `flow:sync`) carries the camera ...
        expert_sio = await live.connect_user("kela")
        for client in (agent_sio, expert_sio):
            synced = await ack_of(client, "flow:sync", {})
            listed = {p["participant_id"]: p for p in synced["call"]["participants"]}
            assert (listed[pid]["role"], listed[pid]["connected"]) == (DOCCAM, True)
        # ... and both pages show it.
        selector = f"#call-participants li[data-participant='{pid}']"
        for person in (kiosk, expert):
            await person.page.wait_for_selector(selector, timeout=15000)
            assert (await person.page.text_content(selector) or "").startswith("Asiakirjakamera")
            roles = await person.page.eval_on_selector_all(
                "#call-participants li", "items => items.map(i => i.dataset.role)"
            )
            assert sorted(roles) == ["customer", DOCCAM, "expert"]
        await screenshot(kiosk.page, "kiosk-call-participants")
        await screenshot(expert.page, "console-call-participants")

        # The documents panels: the camera publishes its key (to send stills), yet neither
        # page offers it as a recipient. The console lists the people, ticked by default; the
        # kiosk only receives (no picker in front of the customer), but a document it sends
        # would still go to the people only.
        stills = DocumentChannel(agent_sio, live.base_url, call_id, device=DOCCAM)
        await stills.start()
        customer = f"endpoint-{live.demo.endpoint_id}"
        kela = f"user-{live.demo.user_ids['kela']}"
        panels = [
            (kiosk, "window.__etapalvelu.kiosk.documentPanel.panel", kela),
            (expert, "window.__etapalvelu.expert.panel.documentPanel.panel", customer),
        ]
        for person, panel, other in panels:
            await person.page.wait_for_function(
                f"() => {panel}.channel.peers.has('{stills.participant_id}')", timeout=15000
            )
            assert await person.page.evaluate(f"{panel}.recipients()") == [other]
            assert await person.page.evaluate(f"{panel}.channel.others()") == [other]
        assert await kiosk.page.locator("[data-testid=documents-recipients]").count() == 0
        assert await kiosk.page.locator("[data-testid=documents-file]").count() == 0
        box = f"[data-testid=documents-recipients] input[data-participant='{customer}']"
        await expert.page.wait_for_selector(box, timeout=15000)
        assert await expert.page.is_checked(box)
        assert await expert.page.eval_on_selector_all(
            "[data-testid=documents-recipients] input",
            "boxes => boxes.map(b => b.dataset.participant)",
        ) == [customer]
        # A file from the kiosk's channel goes to the panel's recipients, the expert (not to
        # the camera: the server would refuse the whole transfer).
        pdf = b"%PDF-1.4\n" + hashlib.sha256(b"liite").digest() * 500
        await kiosk.page.evaluate(
            """async ([panelPath, bytes]) => {
                const panel = panelPath.split(".").slice(1).reduce((o, k) => o[k], window);
                const file = new File([new Uint8Array(bytes)], "liite.pdf",
                                      { type: "application/pdf" });
                await panel.channel.send(file, { recipients: panel.recipients() });
            }""",
            [panels[0][1], list(pdf)],
        )
        digest = hashlib.sha256(pdf).hexdigest()
        await expert.page.wait_for_selector(
            f"[data-testid=documents-item][data-sha256='{digest}']", timeout=20000
        )
        # A still from the camera reaches both pages, and both confirm it.
        sent = await stills.send("sivu.png", PNG)
        png = hashlib.sha256(PNG).hexdigest()
        for person in (kiosk, expert):
            await person.page.wait_for_selector(
                f"[data-testid=documents-item][data-sha256='{png}']", timeout=20000
            )
            # Said in the page's language (Finnish here), not the device's English name.
            mark = await person.page.text_content(
                f"[data-testid=documents-item][data-sha256='{png}'] "
                "[data-testid=documents-verified]"
            )
            assert mark and "Asiakirjakamera" in mark and "document camera" not in mark, mark
        async with asyncio.timeout(20):
            verdicts = await stills.wait_delivered(sent.transfer_id)
        assert verdicts == {customer: ("received", None), kela: ("received", None)}
        await stills.close()
        kiosk.assert_no_errors()
        expert.assert_no_errors()
    finally:
        if camera is not None:
            await camera.close()
        await kiosk.close()
        await expert.close()
