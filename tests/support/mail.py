"""A real SMTP server (aiosmtpd) and a local HTTP SMS gateway for the booking messages.

    from tests.support.mail import Messaging, messaging

    __all__ = ["messaging"]  # the fixture

    async def test_x(tmp_path: Path, messaging: Messaging) -> None:
        async with make_live_service(tmp_path, **messaging.settings) as live:
            ...  # messaging.box: the mail received, messaging.sms: the texts

The fixtures `mailbox` (box, smtp_port) and `gateway` (sms, sms_url) give each alone.
`body_of`, `calendar_of` and `ics_fields` read a received message; `wait_until` polls.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from email.message import Message
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from tests.support.net import LOOPBACK, free_port

SMS_TOKEN = "sms-test-token"


class MailBox:
    """aiosmtpd handler: keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(
                email.message_from_bytes(envelope.content, policy=email.policy.default)
            )
        return "250 OK"

    def subjects(self) -> list[str]:
        with self.lock:
            return [str(m["Subject"]) for m in self.messages]

    def to(self, address: str) -> list[Message]:
        """The messages to `address`, oldest first."""
        with self.lock:
            return [m for m in self.messages if str(m["To"]).lower() == address.lower()]


@contextmanager
def smtp_server() -> Iterator[tuple[MailBox, int]]:
    from aiosmtpd.controller import Controller

    box = MailBox()
    port = free_port()
    controller = Controller(box, hostname=LOOPBACK, port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
def mailbox() -> Iterator[tuple[MailBox, int]]:
    with smtp_server() as found:
        yield found


class SmsGateway:
    """A local HTTP SMS gateway: checks the bearer token, keeps the messages; `fail` answers
    500 that many times first."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.fail = 0
        self.refused = 0

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {SMS_TOKEN}":
            return web.Response(status=401)
        if self.fail:
            self.fail -= 1
            self.refused += 1
            return web.Response(status=500, text="gateway down")
        self.messages.append(await request.json())
        return web.json_response({"id": len(self.messages)})

    def to(self, number: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("to") == number]


@asynccontextmanager
async def sms_gateway() -> AsyncIterator[tuple[SmsGateway, str]]:
    sms = SmsGateway()
    app = web.Application()
    app.router.add_post("/send", sms.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    try:
        yield sms, f"http://{LOOPBACK}:{port}/send"
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def gateway() -> AsyncIterator[tuple[SmsGateway, str]]:
    async with sms_gateway() as found:
        yield found


@dataclass
class Messaging:
    """A test's mail server and SMS gateway, and the settings that send to them."""

    box: MailBox
    sms: SmsGateway
    settings: dict[str, Any]


@pytest_asyncio.fixture
async def messaging() -> AsyncIterator[Messaging]:
    with smtp_server() as (box, smtp_port):
        async with sms_gateway() as (sms, sms_url):
            yield Messaging(
                box,
                sms,
                {
                    "smtp_host": LOOPBACK,
                    "smtp_port": smtp_port,
                    "sms_gateway_url": sms_url,
                    "sms_gateway_token": SMS_TOKEN,
                },
            )


async def wait_until(condition: Callable[[], Any], seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def calendar_of(message: Message) -> bytes:
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload
    raise AssertionError("no text/calendar part")


def body_of(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no text/plain part")


def ics_fields(data: bytes) -> dict[str, str]:
    """The VEVENT's properties, lines unfolded (RFC 5545 §3.1)."""
    text = data.decode("utf-8").replace("\r\n ", "")
    lines = text.split("\r\n")
    inside = lines[lines.index("BEGIN:VEVENT") + 1 : lines.index("END:VEVENT")]
    return dict(line.split(":", 1) for line in inside)
