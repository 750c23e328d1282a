"""Stills into the call: the `StillSink` that hands document-camera stills to the encrypted
document channel (`endpoint.document_channel.DocumentChannel`), so they reach the call's
customer (the kiosk) and expert end-to-end encrypted and are logged like any document. The
document camera only sends: nothing is ever encrypted to it."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from document_camera.stills import Still

logger = logging.getLogger(__name__)

PEER_WAIT = 10.0  # seconds to wait for the kiosk or the expert to have published a key


class DocumentSender(Protocol):
    """What the sink needs of `DocumentChannel`."""

    async def wait_for_peer(self, participant_id: str | None = None) -> None: ...

    async def send(self, name: str, content: bytes, recipients: None = None, *,
                   mime: str | None = None) -> object: ...


class ChannelStillSink:
    def __init__(self, channel: DocumentSender) -> None:
        self.channel = channel
        self.sent: list[object] = []

    async def deliver(self, still: Still) -> None:
        await asyncio.wait_for(self.channel.wait_for_peer(), PEER_WAIT)
        sent = await self.channel.send(still.filename, still.data,
                                       mime=still.metadata.media_type)
        self.sent.append(sent)
        logger.info("still %s (%d bytes) sent into the call", still.filename, len(still.data))
