"""Helpers and fixtures of the document tests (a running call between kiosk and expert)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest_asyncio

from tests.support.service import LiveService


@dataclass
class DocumentCall:
    """A running call between the demo kiosk and the demo Kela expert."""

    live: LiveService
    call_id: int
    kiosk: Any  # socketio.AsyncClient
    expert: Any


async def start_call(live: LiveService) -> DocumentCall:
    kiosk = await live.connect_kiosk()
    expert = await live.connect_user("kela")
    for client in (kiosk, expert):
        assert (await client.call("flow:sync", {}))["ok"]
    taken = await kiosk.call("ticket:take", {"authority": "kela", "language": "fin"})
    assert taken["ok"], taken
    ack = await expert.call("queue:take_next", {})
    assert ack["ok"], ack
    return DocumentCall(live, int(ack["call"]["id"]), kiosk, expert)


@pytest_asyncio.fixture
async def document_call(live_service: LiveService) -> AsyncIterator[DocumentCall]:
    yield await start_call(live_service)
