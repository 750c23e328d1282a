"""The `flow:sync` ack fields the UIs lean on: transfer targets, the office's UI language and
authority names for interpreters and clerks (docs/signaling-events.md, "Connecting")."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from signaling.store.models import Authority, Office
from tests.support.service import LiveService


async def sync(client: Any) -> dict[str, Any]:
    ack: dict[str, Any] = await client.call("flow:sync", {})
    assert ack["ok"] is True, ack
    return ack


async def enabled_codes(live: LiveService) -> list[str]:
    async with live.services.sessions() as session:
        rows = await session.execute(
            select(Authority.code).where(Authority.enabled.is_(True)).order_by(Authority.id)
        )
        return list(rows.scalars())


async def test_expert_gets_every_enabled_authority_as_transfer_target(
    live_service: LiveService,
) -> None:
    async with live_service.services.sessions() as session:
        await session.execute(
            update(Authority).where(Authority.code == "migri").values(enabled=False)
        )
        await session.commit()
    expert = await live_service.connect_user("kela")
    ack = await sync(expert)
    # His own authorities stay as they were; every enabled one is a transfer target.
    assert [a["code"] for a in ack["authorities"]] == ["kela"]
    targets = ack["all_authorities"]
    assert [a["code"] for a in targets] == await enabled_codes(live_service)
    assert "migri" not in [a["code"] for a in targets]
    assert "vero" in [a["code"] for a in targets]
    vero = next(a for a in targets if a["code"] == "vero")
    assert set(vero["name"]) == {"fi", "sv", "en"}
    assert vero["name"]["fi"] and vero["name"]["sv"] and vero["name"]["en"]
    assert vero["name"]["fi"] != vero["name"]["sv"]
    assert isinstance(vero["id"], int) and vero["service_types"]


async def test_kiosk_gets_the_office_default_language(live_service: LiveService) -> None:
    kiosk = await live_service.connect_kiosk()
    assert (await sync(kiosk))["default_language"] == "fi"
    async with live_service.services.sessions() as session:
        await session.execute(
            update(Office)
            .where(Office.id == live_service.demo.office_id)
            .values(default_language="sv")
        )
        await session.commit()
    assert (await sync(kiosk))["default_language"] == "sv"


async def test_interpreter_and_clerk_get_authority_names(live_service: LiveService) -> None:
    codes = await enabled_codes(live_service)
    for username in ("tulkki", "sihteeri"):
        client = await live_service.connect_user(username)
        ack = await sync(client)
        authorities = ack["authorities"]
        assert [a["code"] for a in authorities] == codes, username
        vero = next(a for a in authorities if a["code"] == "vero")
        assert vero["name"]["fi"] == "Verohallinto", username
