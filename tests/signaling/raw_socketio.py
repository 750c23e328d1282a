"""A socket.io client speaking the wire protocol itself (engine.io 4 over a websocket).

python-socketio's client will not emit the names it reserves (`connect`, `disconnect`, …) and
always sends a string as the event name; an attacker's client does neither. This one sends any
JSON as a packet, so tests can perform what the outside review did.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp


class RawSocketIO:
    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.http = http
        self.ws = ws
        self.sid = ""
        self.next_id = 1
        self.acks: dict[int, asyncio.Future[Any]] = {}
        self.events: list[Any] = []
        self.closed = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, base_url: str, auth: dict[str, Any]) -> RawSocketIO:
        http = aiohttp.ClientSession()
        ws = await http.ws_connect(f"{base_url}/socket.io/?EIO=4&transport=websocket")
        opened = await ws.receive_str(timeout=10)
        assert opened.startswith("0"), opened
        await ws.send_str("40" + json.dumps(auth))
        early: list[Any] = []
        answer = await ws.receive_str(timeout=10)
        while answer.startswith("42"):
            # An event the server emitted while its connect handler ran (an expert coming
            # online updates his lines); socket.io clients buffer these until the connect ack.
            early.append(json.loads(answer[2:]))
            answer = await ws.receive_str(timeout=10)
        if not answer.startswith("40"):
            await ws.close()
            await http.close()
            raise ConnectionRefusedError(answer)
        client = cls(http, ws)
        client.events.extend(early)
        client.sid = json.loads(answer[2:])["sid"]
        return client

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                text = message.data
                if text == "2":  # engine.io ping
                    await self.ws.send_str("3")
                elif text.startswith("43"):  # socket.io ACK
                    body = text[2:]
                    cut = body.index("[")
                    future = self.acks.pop(int(body[:cut]), None)
                    if future is not None and not future.done():
                        future.set_result(json.loads(body[cut:])[0])
                elif text.startswith("42"):
                    self.events.append(json.loads(text[2:]))
                elif text.startswith("41"):  # socket.io DISCONNECT from the server
                    break
        finally:
            self.closed.set()

    async def emit_raw(self, data: list[Any], wait: float = 10) -> Any:
        """Send `data` (name first) as one EVENT packet with an ack id; return the ack."""
        ack_id = self.next_id
        self.next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.acks[ack_id] = future
        await self.ws.send_str(f"42{ack_id}" + json.dumps(data))
        return await asyncio.wait_for(future, wait)

    async def send_no_ack(self, data: list[Any]) -> None:
        await self.ws.send_str("42" + json.dumps(data))

    @property
    def connected(self) -> bool:
        return not self.closed.is_set()

    async def close(self) -> None:
        self.reader.cancel()
        await self.ws.close()
        await self.http.close()


__all__ = ["RawSocketIO"]
