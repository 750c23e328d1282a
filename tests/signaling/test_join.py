"""The customer at home (issue 18): join links, the 410 pages, the waiting room, admission, the
guest principal's limits, the device check's relay probe and the OpenID Connect identity step
against a local test provider (tests/signaling/oidc_provider.py). The browser flow is
tests/expert_console/test_join_browser.py."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from signaling.db import utcnow
from signaling.directory.join_identity import IdentityError, OidcProvider, decode_pending
from signaling.flow.join_tokens import JoinRefused, Refusal, consume, issue_join_link, open_link
from signaling.store.flow_models import Appointment, AppointmentStatus
from signaling.store.models import Authority
from tests.signaling.oidc_provider import LocalOidcProvider
from tests.support.service import LiveService, connect_refusal, make_live_service


async def remote_appointment(
    live: LiveService,
    *,
    starts_in: timedelta = timedelta(minutes=5),
    expert: str | None = "kela",
    authority: str = "kela",
) -> tuple[int, str]:
    """A remote appointment of the demo office and its link `/join/<token>`."""
    from signaling.flow.appointments import new_code

    now = utcnow()
    async with live.services.sessions() as session:
        found = (
            await session.execute(select(Authority).where(Authority.code == authority))
        ).scalar_one()
        appointment = Appointment(
            code=new_code(),
            authority_id=found.id,
            office_id=live.demo.office_id,
            starts_at=now + starts_in,
            language="fin",
            service_type="general",
            expert_id=live.demo.user_ids[expert] if expert else None,
            status=AppointmentStatus.BOOKED.value,
            created_at=now,
        )
        appointment.remote = True
        session.add(appointment)
        await session.flush()
        path = await issue_join_link(session, appointment, now)
        await session.commit()
        return appointment.id, path


@contextlib.asynccontextmanager
async def http(**kwargs: Any) -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe: keep cookies of an IP-address host (127.0.0.1), as a browser does
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), **kwargs) as s:
        yield s


async def ack(client: socketio.AsyncClient, event: str, data: Any = None) -> dict[str, Any]:
    result: dict[str, Any] = await client.call(event, {} if data is None else data, timeout=10)
    return result


def error_of(answer: dict[str, Any]) -> str:
    assert answer["ok"] is False, answer
    return str(answer["error"]["code"])


async def guest_tab(live: LiveService, secret: str) -> socketio.AsyncClient:
    """One browser tab of the customer at home: a socket with his session cookie."""
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(
        live.base_url,
        auth={"guest": True},
        headers={"Cookie": f"etapalvelu_join={secret}"},
        transports=["websocket"],
    )
    live.clients.append(client)
    return client


async def until(check: Any, what: str) -> None:
    for _ in range(100):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


# --- migration and token rules ---------------------------------------------------------------


async def test_link_window_single_use_and_garbage(live_service: LiveService) -> None:
    live = live_service
    _early_id, early = await remote_appointment(live, starts_in=timedelta(hours=2))
    _late_id, late = await remote_appointment(live, starts_in=timedelta(hours=-2))
    appointment_id, path = await remote_appointment(live)
    token = path.removeprefix("/join/")
    now = utcnow()
    async with live.services.sessions() as session:
        with pytest.raises(JoinRefused) as refused:
            await open_link(session, early.removeprefix("/join/"), now, None)
        assert refused.value.reason == Refusal.TOO_EARLY and refused.value.opens_at is not None
        with pytest.raises(JoinRefused) as refused:
            await open_link(session, late.removeprefix("/join/"), now, None)
        assert refused.value.reason == Refusal.EXPIRED
        # only the hash is stored
        from signaling.store.remote_models import JoinToken

        stored = list((await session.execute(select(JoinToken.token_hash))).scalars())
        assert token not in stored and len(stored) == 3
        guest, secret = await consume(session, token, now)
        assert guest.appointment_id == appointment_id
        with pytest.raises(JoinRefused) as refused:
            await consume(session, token, now)
        assert refused.value.reason == Refusal.USED
        assert (await open_link(session, token, now, secret)).guest is not None
        with pytest.raises(JoinRefused):
            await open_link(session, token, now, secret[:-1] + "x")
        # a second link of the same appointment is spent too: one customer per appointment
        appointment = await session.get(Appointment, appointment_id)
        assert appointment is not None
        other = (await issue_join_link(session, appointment, now)).removeprefix("/join/")
        await session.commit()
        with pytest.raises(JoinRefused) as refused:
            await open_link(session, other, now, None)
        assert refused.value.reason == Refusal.USED
        # a non-remote appointment gets no link
        appointment.remote = False
        with pytest.raises(ValueError):
            await issue_join_link(session, appointment, now)
        await session.rollback()

        for text in [
            "",
            "x",
            "A" * 43,
            "A" * 42 + "!",
            "../../etc",
            token[:-1],
            token + "A",
            "\x00" * 43,
            "ä" * 43,
        ]:
            with pytest.raises(JoinRefused) as refused:
                await open_link(session, text, now, text)
            assert refused.value.reason == Refusal.UNKNOWN, text


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.binary(max_size=200))
def test_parsers_take_garbage(text: str, raw: bytes) -> None:
    """The cookie header, the identity step's cookie and the token check never raise."""
    from signaling.directory.join_identity import b64url
    from signaling.flow.join_tokens import plausible_token
    from signaling.flow.remote_customer import cookie_value

    assert plausible_token(text) in (True, False)
    value = cookie_value(text, "etapalvelu_join")
    assert value is None or isinstance(value, str)
    assert decode_pending(text) is None or text  # only a well-formed value decodes
    assert decode_pending(b64url(raw)) is None


# --- HTTP and sockets -------------------------------------------------------------------------


async def test_join_http_waiting_room_and_admission(live_service: LiveService) -> None:
    live = live_service
    base = live.base_url
    appointment_id, path = await remote_appointment(live)
    _early_id, early = await remote_appointment(live, starts_in=timedelta(hours=3))
    async with http() as browser, http() as other:
        # 410 pages: unknown in fi (Accept-Language) and sv (?lang), too early says when
        async with browser.get(f"{base}/join/{'A' * 43}", headers={"Accept-Language": "fi"}) as r:
            assert r.status == 410 and 'lang="fi"' in (text := await r.text())
            assert "Tätä linkkiä ei tunneta" in text and "Varaa uusi aika" in text
        async with browser.get(f"{base}/join/nonsense?lang=sv") as r:
            assert r.status == 410 and "känns inte igen" in await r.text()
        async with browser.get(
            f"{base}{early}", headers={"Accept-Language": "en-GB,en;q=0.9"}
        ) as r:
            text = await r.text()
            assert r.status == 410 and "It is too early. The link opens" in text and " at " in text
        async with browser.get(f"{base}{early}/state") as r:
            body = await r.json()
            assert r.status == 410 and body["error"]["reason"] == "too_early"
        # the valid link: the page, its state, entering
        async with browser.get(f"{base}{path}") as r:
            assert r.status == 200 and "join.js" in await r.text()
            assert r.headers["Cache-Control"] == "no-store"
        async with browser.get(f"{base}{path}/state") as r:
            state = await r.json()
        assert state["phase"] == "check" and state["identity"] == "none"
        assert state["appointment"]["expert_name"] == "Kaisa Kela-asiantuntija"
        assert "code" not in state["appointment"] and state["ice_servers"] == []
        async with browser.post(f"{base}{path}/enter") as r:
            assert r.status == 200
            cookie = r.cookies["etapalvelu_join"]
            assert cookie["httponly"] and cookie["samesite"] == "Lax"
        # the same browser: in again (a reload); another browser: 410 "used" in Swedish
        async with browser.get(f"{base}{path}") as r:
            assert r.status == 200
        async with browser.post(f"{base}{path}/enter") as r:
            assert r.status == 200
        async with other.get(f"{base}{path}", headers={"Accept-Language": "sv-FI"}) as r:
            text = await r.text()
            assert r.status == 410 and "Länken fungerar bara en gång" in text
        async with other.post(f"{base}{path}/enter") as r:
            assert r.status == 410 and (await r.json())["error"]["reason"] == "used"
        secret = cookie.value

        # the device check's relay probe: bad input, then a real offer
        async with browser.post(f"{base}{path}/probe/nope/answer", data=b"{]") as r:
            assert r.status == 400
        async with browser.post(f"{base}{path}/probe/nope/answer", json={"sdp": "x"}) as r:
            assert r.status == 404
        async with other.post(f"{base}{path}/probe") as r:
            assert r.status == 410
        async with browser.post(f"{base}{path}/probe") as r:
            probe = await r.json()
            assert r.status == 200 and probe["offer"]["sdp"].startswith("v=0")
        pid = probe["probe_id"]
        for bad in ({"sdp": 5}, {"sdp": "x", "more": 1}, ["sdp"], {"sdp": "x" * 60001}):
            async with browser.post(f"{base}{path}/probe/{pid}/answer", json=bad) as r:
                assert r.status == 400, bad
        async with browser.post(f"{base}{path}/probe/{pid}/answer", json={"sdp": "garbage"}) as r:
            assert r.status == 400
        async with browser.post(f"{base}{path}/probe/{pid}/close") as r:
            assert r.status == 200
        async with browser.post(f"{base}{path}/probe/{pid}/answer", json={"sdp": "x"}) as r:
            assert r.status == 404

    # the socket: only with the cookie
    refusal = await connect_refusal(base, {"guest": True})
    assert refusal["data"]["code"] == "unauthenticated"
    for header in ("etapalvelu_join=" + "x" * 43, 'etapalvelu_join="\\', "a" * 9000):
        client = socketio.AsyncClient(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(
                base,
                auth={"guest": True},
                headers={"Cookie": header},
                transports=["websocket"],
                wait_timeout=5,
            )
    guest = await guest_tab(live, secret)
    admitted: list[dict[str, Any]] = []
    guest.on("remote:admitted", lambda data: admitted.append(data))
    state = await ack(guest, "remote:state")
    assert state["ok"] and state["phase"] == "waiting"
    assert state["appointment"]["starts_at"] and state["call"] is None
    who = await ack(guest, "session:whoami")
    assert who["principal"]["role"] == "customer" and who["principal"]["kind"] == "guest"
    # no rights beyond his call
    for event, data in [
        ("flow:sync", {}),
        ("appointment:list", {}),
        ("remote:list", {}),
        ("remote:admit", {"appointment_id": appointment_id}),
        ("presence:get", {}),
        ("ticket:take", {"authority_code": "kela"}),
    ]:
        assert error_of(await ack(guest, event, data)) in {"forbidden", "unknown_event"}, event
    assert error_of(await ack(guest, "remote:state", {"x": 1})) == "invalid"

    expert = await live.connect_user("kela")
    other_expert = await live.connect_user("rakennus")
    waiting = await ack(expert, "remote:list")
    assert [w["appointment_id"] for w in waiting["waiting"]] == [appointment_id]
    assert waiting["waiting"][0]["online"] is True
    assert (await ack(other_expert, "remote:list"))["waiting"] == []
    for bad in [
        {},
        {"appointment_id": 0},
        {"appointment_id": "x"},
        {"appointment_id": 2**40},
        {"appointment_id": appointment_id, "more": 1},
        None,
        [1],
    ]:
        assert error_of(await ack(expert, "remote:admit", bad)) == "invalid", bad
    assert error_of(await ack(expert, "remote:admit", {"appointment_id": 999999})) == "not_found"
    assert (
        error_of(await ack(other_expert, "remote:admit", {"appointment_id": appointment_id}))
        == "forbidden"
    )
    assert (
        error_of(await ack(expert, "remote:admit", {"appointment_id": _early_id})) == "conflict"
    )  # nobody waiting
    result = await ack(expert, "remote:admit", {"appointment_id": appointment_id})
    assert result["ok"], result
    call = result["call"]
    roles = sorted((p["role"], p["participant_id"].split("-")[0]) for p in call["participants"])
    assert roles == [("customer", "guest"), ("expert", "user")]
    assert (
        error_of(await ack(expert, "remote:admit", {"appointment_id": appointment_id}))
        == "conflict"
    )
    for _ in range(50):
        if admitted:
            break
        await guest.sleep(0.05)
    assert admitted and admitted[0]["call"]["id"] == call["id"]
    assert (await ack(guest, "remote:state"))["phase"] == "call"
    # the customer joins his own call (a relay offer), and no other
    joined = await ack(guest, "call:join", {"call_id": call["id"]})
    assert joined["ok"] and joined["offer"]["sdp"].startswith("v=0"), joined
    assert error_of(await ack(guest, "call:join", {"call_id": call["id"] + 1000})) == "not_found"
    assert error_of(await ack(guest, "call:end", {"call_id": call["id"]})) == "forbidden"
    async with live.services.sessions() as session:
        appointment = await session.get(Appointment, appointment_id)
        assert appointment is not None and appointment.status == AppointmentStatus.SERVED
    # the expert ends it: the customer hears, and his page shows the end
    ended: list[dict[str, Any]] = []
    guest.on("call:ended", lambda data: ended.append(data))
    assert (await ack(expert, "call:end", {"call_id": call["id"]}))["ok"]
    for _ in range(50):
        if ended:
            break
        await guest.sleep(0.05)
    assert ended and ended[0]["call_id"] == call["id"]
    assert (await ack(guest, "remote:state"))["phase"] == "ended"


async def test_the_seat_rejoin_and_admission_again(live_service: LiveService) -> None:
    """The tab in the call keeps its seat (a reconnect or reload goes on in the call); another
    tab waits while it is in, and brings the customer back to the waiting room once it dropped
    out; the call's expert sees him waiting again and lets him into the same call."""
    live = live_service
    appointment_id, path = await remote_appointment(live)
    async with http() as browser:
        async with browser.post(f"{live.base_url}{path}/enter") as r:
            secret = r.cookies["etapalvelu_join"].value
    expert = await live.connect_user("kela")
    pushed: list[dict[str, Any]] = []
    expert.on("remote:waiting", lambda data: pushed.append(data["customer"]))
    first = await guest_tab(live, secret)
    call = (await ack(expert, "remote:admit", {"appointment_id": appointment_id}))["call"]

    # the first tab to ask takes the seat; showing it again (a reconnect, a reload) keeps it
    state = await ack(first, "remote:state")
    seat = state["seat"]
    assert state["phase"] == "call" and seat and len(seat) >= 43 and not state["elsewhere"]
    again = await ack(first, "remote:state", {"seat": seat})
    assert again["phase"] == "call" and again["seat"] == seat
    assert error_of(await ack(first, "remote:state", {"seat": "short"})) == "invalid"
    # another tab while the first joins, and while it is in the call: it only waits
    second = await guest_tab(live, secret)
    assert (await ack(second, "remote:state"))["elsewhere"] is True
    assert (await ack(first, "call:join", {"call_id": call["id"]}))["ok"]
    other = await ack(second, "remote:state", {"seat": "x" * 43})
    assert other["phase"] == "waiting" and other["elsewhere"] and other["seat"] is None
    # a seatless tab cannot give the call up for the tab that is in it
    assert (await ack(second, "remote:return"))["elsewhere"] is True

    # the tab in the call closes: the other tab (asking again, as the page does while
    # `elsewhere`) brings him back to the waiting room once the server has seen it go
    await first.disconnect()
    for _ in range(100):
        state = await ack(second, "remote:state")
        if not state["elsewhere"]:
            break
        await asyncio.sleep(0.05)
    assert state["phase"] == "waiting" and state["returning"] and not state["elsewhere"]
    await until(lambda: pushed and pushed[-1]["returning"], "the expert hears he waits again")
    assert pushed[-1]["online"] and not pushed[-1]["admitted"]
    listed = (await ack(expert, "remote:list"))["waiting"]
    assert [(w["appointment_id"], w["returning"]) for w in listed] == [(appointment_id, True)]
    assert (await ack(await live.connect_user("rakennus"), "remote:list"))["waiting"] == []
    # the old seat is spent, and nobody joins the call before he is let in again
    reloaded = await guest_tab(live, secret)
    assert (await ack(reloaded, "remote:state", {"seat": seat}))["phase"] == "waiting"
    refused = await ack(second, "call:join", {"call_id": call["id"]})
    assert error_of(refused) == "conflict" and refused["error"]["reason"] == "left"

    # the expert lets him into the same call again; the tab that asks takes a new seat
    admitted: list[dict[str, Any]] = []
    second.on("remote:admitted", lambda data: admitted.append(data))
    back = await ack(expert, "remote:admit", {"appointment_id": appointment_id})
    assert back["ok"] and back["call"]["id"] == call["id"], back
    guest_row = [p for p in back["call"]["participants"] if p["kind"] == "guest"]
    assert guest_row and guest_row[0]["left"] is False
    await until(lambda: admitted, "remote:admitted")
    state = await ack(second, "remote:state")
    assert state["phase"] == "call" and state["seat"] not in (None, seat)
    assert (await ack(second, "call:join", {"call_id": call["id"]}))["ok"]
    # his page gives up (the media did not come back): the waiting room, once more
    assert (await ack(second, "remote:return", {"seat": state["seat"]}))["phase"] == "waiting"
    await until(lambda: pushed[-1]["returning"], "the expert hears he waits again")
    # the expert ends the call: the customer waiting to get back hears it
    ended: list[dict[str, Any]] = []
    second.on("call:ended", lambda data: ended.append(data))
    assert (await ack(expert, "call:end", {"call_id": call["id"]}))["ok"]
    await until(lambda: ended, "call:ended to the customer in the waiting room")
    assert (await ack(second, "remote:state"))["phase"] == "ended"
    assert (await ack(expert, "remote:list"))["waiting"] == []
    assert error_of(await ack(expert, "remote:admit", {"appointment_id": appointment_id})) == (
        "conflict"
    )


# --- OpenID Connect ---------------------------------------------------------------------------


async def test_oidc_identity_step_against_a_local_provider(tmp_path: Path) -> None:
    async with LocalOidcProvider(client_id="etapalvelu") as op:
        provider = OidcProvider(op.issuer, "etapalvelu", allow_http=True)
        redirect = "http://127.0.0.1:9/join/identity/callback"

        async def run(**tweaks: Any) -> Any:
            url, pending = await provider.start(redirect_uri=redirect)
            params = await op.authorize(url, **tweaks)
            return await provider.finish(params, pending, redirect_uri=redirect)

        identified = await run()
        assert identified.provider == "oidc" and identified.subject == "010101-123N"
        assert op.verified_pkce == 1  # the provider checked our code_verifier
        for tweak, reason in [
            ({"nonce": "someone-elses"}, "bad_nonce"),
            ({"audience": "another-client"}, "bad_token"),
            ({"sign_with_other_key": True}, "bad_token"),
            ({"issuer": "http://127.0.0.1:1/evil"}, "bad_token"),
            ({"expired": True}, "bad_token"),
            ({"alg": "none"}, "bad_token"),
            ({"alg": "HS256"}, "bad_token"),
            ({"state": "forged"}, "bad_state"),
            ({"error": "access_denied"}, "refused"),
        ]:
            with pytest.raises(IdentityError) as refused:
                await run(**tweak)
            assert refused.value.reason == reason, tweak
        # no https, no provider
        with pytest.raises(ValueError):
            OidcProvider(op.issuer, "etapalvelu")
        assert decode_pending("garbage!") is None and decode_pending("") is None

        # through the service: the link's identity step, then the waiting room
        async with make_live_service(
            tmp_path,
            join_identity="oidc",
            oidc_issuer=op.issuer,
            oidc_client_id="etapalvelu",
            oidc_allow_http=True,
        ) as live:
            _appointment_id, path = await remote_appointment(live)
            async with http() as browser:
                async with browser.post(f"{live.base_url}{path}/enter") as r:
                    assert r.status == 409  # identify first
                async with browser.get(f"{live.base_url}{path}/state") as r:
                    assert (await r.json())["identity"] == "oidc"
                async with browser.get(
                    f"{live.base_url}{path}/identity", allow_redirects=False
                ) as r:
                    assert r.status == 303 and r.headers["Location"].startswith(op.issuer)
                    authorize = r.headers["Location"]
                params = await op.authorize(authorize)
                async with browser.get(
                    f"{live.base_url}/join/identity/callback", params=params, allow_redirects=False
                ) as r:
                    assert r.status == 303 and r.headers["Location"] == path
                    assert "etapalvelu_join" in r.cookies
                async with browser.get(f"{live.base_url}{path}/state") as r:
                    state = await r.json()
                    assert state["phase"] == "waiting" and state["identified"] is True
                # a callback with a forged state goes back to the page with an error
                async with browser.get(
                    f"{live.base_url}/join/identity/callback",
                    params={"state": "x", "code": "y"},
                    allow_redirects=False,
                ) as r:
                    assert r.status in (303, 410)
            async with (
                http() as stranger,
                stranger.get(
                    f"{live.base_url}/join/identity/callback", params={"state": "x", "code": "y"}
                ) as r,
            ):
                assert r.status == 410  # no pending identity step in this browser
