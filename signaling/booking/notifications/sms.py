"""SMS through a pluggable gateway. `SmsGateway` is what the outbox needs; `HttpSmsGateway`
speaks the common shape of operators' HTTP APIs: POST JSON `{"to", "text", "sender"}` to the
configured URL with `Authorization: Bearer <token>`; any 2xx is accepted.
"""

from __future__ import annotations

from typing import Protocol

import aiohttp


class SendError(Exception):
    """A message could not be handed over (the outbox retries later)."""


class SmsGateway(Protocol):
    async def send(self, to: str, text: str) -> None: ...


class HttpSmsGateway:
    def __init__(self, url: str, token: str, sender: str, timeout: float = 10.0) -> None:
        self.url = url
        self.token = token
        self.sender = sender
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def send(self, to: str, text: str) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        body = {"to": to, "text": text, "sender": self.sender}
        try:
            async with (
                aiohttp.ClientSession(timeout=self.timeout) as http,
                http.post(self.url, json=body, headers=headers) as response,
            ):
                if not 200 <= response.status < 300:
                    detail = (await response.text())[:200]
                    raise SendError(f"SMS gateway answered {response.status}: {detail}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SendError(f"SMS gateway unreachable: {type(exc).__name__}: {exc}") from exc


__all__ = ["HttpSmsGateway", "SendError", "SmsGateway"]
