"""Sending and receiving end-to-end encrypted documents in a call (client side, Python).

Used by the office's endpoint agent (document-camera stills travel as documents), by the
benchmark and by tests. The browser twin is `signaling/static/js/document-channel.js`. The
protocol is docs/document-protocol.md §5: keys over socket.io, ciphertext over HTTP with
resumable, offset-addressed uploads and Range downloads.

    channel = DocumentChannel(sio_client, "http://127.0.0.1:8080", call_id=7)
    await channel.start()                          # publish call keys, learn the others'
    sent = await channel.send("scan.pdf", data)    # to the customer and the expert
    doc = await channel.receive()                  # verified, or DocumentError
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from endpoint.document_crypto import (
    DEFAULT_CHUNK_SIZE,
    SUITE_P256,
    SUITE_X25519,
    CallKeyPair,
    DecryptedDocument,
    DocumentError,
    DocumentMetadata,
    decrypt_document,
    encrypt_document,
)
from signaling.wire.canonical import b64u_decode, b64u_encode

__all__ = ["DocumentChannel", "PeerKey", "ReceivedDocument", "SentDocument", "TransferError"]

log = logging.getLogger(__name__)

SEGMENT_BYTES = 4 << 20  # one HTTP request of the upload; a reconnect loses at most this much
RETRIES = 5
Progress = Callable[[float], None]
# Who a document goes to when the sender names nobody: the people of the call. An interpreter
# only when picked; a device (the document camera) never — the server refuses it anyway.
DEFAULT_RECIPIENT_ROLES = frozenset({"customer", "expert"})


class TransferError(RuntimeError):
    """The server refused a step of a transfer, or the transfer could not be completed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass(frozen=True)
class PeerKey:
    """A participant's call key as the server attested it."""

    participant_id: str
    kind: str
    principal_id: int
    role: str
    name: str
    suite: int
    public_key: bytes
    fingerprint: str

    @classmethod
    def from_view(cls, view: dict[str, Any]) -> PeerKey:
        return cls(view["participant_id"], view["kind"], int(view["principal_id"]), view["role"],
                   view["name"], int(view["suite"]), b64u_decode(view["public_key"]),
                   view["fingerprint"])


@dataclass(frozen=True)
class SentDocument:
    transfer_id: str
    metadata: DocumentMetadata
    recipients: tuple[str, ...]
    ciphertext_bytes: int


@dataclass(frozen=True)
class ReceivedDocument:
    transfer_id: str
    sender: PeerKey
    metadata: DocumentMetadata
    content: bytes
    verified: bool  # hash, size, type and the sender's attested key all checked out


@dataclass
class _Delivery:
    expected: set[str]
    verdicts: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class DocumentChannel:
    def __init__(
        self,
        sio: Any,  # socketio.AsyncClient, connected and authenticated
        base_url: str,
        call_id: int,
        *,
        device: str = "kiosk",
        max_bytes: int = 50 * 1024 * 1024,
        http: aiohttp.ClientSession | None = None,
    ) -> None:
        self.sio = sio
        self.base_url = base_url.rstrip("/")
        self.call_id = call_id
        self.device = device
        self.max_bytes = max_bytes
        self.keys = {suite: CallKeyPair.generate(suite) for suite in (SUITE_X25519, SUITE_P256)}
        self.participant_id = ""
        self.peers: dict[str, dict[int, PeerKey]] = {}
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.cancelled: set[str] = set()
        self._deliveries: dict[str, _Delivery] = {}
        self._http = http
        self._own_http = http is None
        self._seen: set[str] = set()
        self._keys_changed = asyncio.Event()
        sio.on("documents:keys", self._on_keys)
        sio.on("documents:incoming", self._on_incoming)
        sio.on("documents:delivered", self._on_delivered)
        sio.on("documents:cancelled", self._on_cancelled)

    # -- socket.io ----------------------------------------------------------------------------

    async def _call(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        ack: dict[str, Any] = await self.sio.call(event, payload, timeout=15)
        if not ack.get("ok"):
            error = ack.get("error", {})
            raise TransferError(error.get("reason") or error.get("code", "error"),
                                error.get("message", "refused"))
        return ack

    async def _on_keys(self, data: dict[str, Any]) -> None:
        if data.get("call_id") == self.call_id:
            self._apply_keys(data["keys"])

    def _apply_keys(self, views: list[dict[str, Any]]) -> None:
        peers: dict[str, dict[int, PeerKey]] = {}
        for view in views:
            key = PeerKey.from_view(view)
            peers.setdefault(key.participant_id, {})[key.suite] = key
        self.peers = peers
        self._keys_changed.set()

    async def _on_incoming(self, data: dict[str, Any]) -> None:
        if data.get("call_id") == self.call_id and data["transfer_id"] not in self._seen:
            self._seen.add(data["transfer_id"])
            await self.incoming.put(data)

    async def _on_delivered(self, data: dict[str, Any]) -> None:
        delivery = self._deliveries.get(data["transfer_id"])
        if delivery is not None:
            delivery.verdicts[data["recipient"]] = (data["verdict"], data.get("reason"))
            if set(delivery.verdicts) >= delivery.expected:
                delivery.done.set()

    async def _on_cancelled(self, data: dict[str, Any]) -> None:
        self.cancelled.add(data["transfer_id"])

    async def start(self) -> None:
        """Publish this participant's call keys (again after a reconnect: same keys)."""
        ack = await self._call("documents:key", {
            "call_id": self.call_id,
            "device": self.device,
            "keys": [{"suite": s, "public_key": b64u_encode(k.public_bytes)}
                     for s, k in self.keys.items()],
        })
        self.participant_id = ack["participant_id"]
        self.max_bytes = min(self.max_bytes, int(ack.get("max_document_bytes", self.max_bytes)))
        self._apply_keys(ack["keys"])
        for pending in ack.get("pending", []):
            await self._on_incoming({**pending, "call_id": self.call_id})
        # Verdicts on this participant's transfers that came while he was away (when the
        # server replays them: `delivered`, the `documents:delivered` pushes he missed).
        for verdict in ack.get("delivered", []):
            await self._on_delivered(verdict)

    def fingerprint(self, suite: int = SUITE_X25519) -> str:
        return self.keys[suite].fingerprint

    def default_recipients(self) -> tuple[str, ...]:
        """The customer and the expert (whoever of them has a key), never a device."""
        return tuple(
            pid for pid, keys in self.peers.items()
            if pid != self.participant_id
            and any(key.role in DEFAULT_RECIPIENT_ROLES for key in keys.values())
        )

    async def wait_for_peer(self, participant_id: str | None = None) -> None:
        """Until a default recipient (or that participant) has published a key (wrap in a
        timeout)."""
        while not (participant_id in self.peers if participant_id is not None
                   else self.default_recipients()):
            self._keys_changed.clear()
            await self._keys_changed.wait()

    # -- HTTP -----------------------------------------------------------------------------------

    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        return self._http

    async def close(self) -> None:
        if self._own_http and self._http is not None:
            await self._http.close()
            self._http = None

    async def upload_bytes(self, transfer_id: str, url: str, data: bytes,
                           on_progress: Progress | None = None) -> None:
        """PUT `data` in segments at the server's offset; resumes after a dropped connection."""
        offset = 0
        failures = 0
        view = memoryview(data)
        while offset < len(data):
            if transfer_id in self.cancelled:
                raise TransferError("cancelled", "the transfer was cancelled")
            end = min(offset + SEGMENT_BYTES, len(data))
            try:
                async with self.http().put(f"{self.base_url}{url}&offset={offset}",
                                           data=bytes(view[offset:end])) as response:
                    body = await response.json()
                    if response.status == 200 or (response.status == 409
                                                  and "received_bytes" in body):
                        offset = int(body["received_bytes"])
                    else:
                        error = body.get("error", {})
                        raise TransferError(error.get("code", str(response.status)),
                                            error.get("message", "upload refused"))
                failures = 0
            except (aiohttp.ClientError, TimeoutError) as exc:
                failures += 1
                if failures > RETRIES:
                    raise TransferError("unavailable", f"upload failed: {exc}") from exc
                await asyncio.sleep(0.2 * failures)
                status = await self._call("documents:status", {"transfer_id": transfer_id})
                offset = int(status["received_bytes"])
            if on_progress:
                on_progress(offset / len(data))

    async def download_bytes(self, transfer_id: str, url: str, total: int,
                             on_progress: Progress | None = None) -> bytes:
        """GET the ciphertext, continuing with `Range: bytes=N-` after a dropped connection."""
        buffer = bytearray()
        failures = 0
        while len(buffer) < total:
            if transfer_id in self.cancelled:
                raise TransferError("cancelled", "the sender cancelled the document")
            headers = {"Range": f"bytes={len(buffer)}-"} if buffer else {}
            try:
                async with self.http().get(f"{self.base_url}{url}", headers=headers) as response:
                    if response.status not in (200, 206):
                        body = await response.json()
                        error = body.get("error", {})
                        raise TransferError(error.get("code", str(response.status)),
                                            error.get("message", "download refused"))
                    async for piece in response.content.iter_chunked(1 << 20):
                        buffer += piece
                        if len(buffer) > total:
                            raise TransferError("too_large", "more bytes than announced")
                        if on_progress:
                            on_progress(len(buffer) / total)
                failures = 0
            except (aiohttp.ClientError, TimeoutError) as exc:
                failures += 1
                if failures > RETRIES:
                    raise TransferError("unavailable", f"download failed: {exc}") from exc
                await asyncio.sleep(0.2 * failures)
        return bytes(buffer)

    # -- documents ----------------------------------------------------------------------------

    def _suite_for(self, recipients: Sequence[str]) -> int:
        for suite in (SUITE_X25519, SUITE_P256):
            if all(suite in self.peers.get(pid, {}) for pid in recipients):
                return suite
        raise TransferError("no_key", "no key type that every recipient has published")

    async def send(
        self,
        name: str,
        content: bytes,
        recipients: Sequence[str] | None = None,
        *,
        mime: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        on_progress: Progress | None = None,
    ) -> SentDocument:
        """Encrypt for the recipients (default: the customer and the expert) and upload."""
        if len(content) > self.max_bytes:
            raise DocumentError("too_large", f"{len(content)} bytes, limit {self.max_bytes}")
        targets = tuple(recipients) if recipients is not None else self.default_recipients()
        if not targets:
            raise TransferError("no_recipients", "nobody else has published a key yet")
        suite = self._suite_for(targets)
        loop = asyncio.get_running_loop()
        metadata = await loop.run_in_executor(None, DocumentMetadata.describe, name, content, mime)
        public = [self.peers[pid][suite].public_key for pid in targets]
        ciphertext = await loop.run_in_executor(
            None, lambda: encrypt_document(content, metadata, self.keys[suite], public,
                                           chunk_size=chunk_size))
        ack = await self._call("documents:offer", {
            "call_id": self.call_id,
            "device": self.device,
            "recipients": list(targets),
            "suite": suite,
            "ciphertext_bytes": len(ciphertext),
            "sha256": metadata.sha256,
            "size": metadata.size,
            "type": metadata.type,
        })
        transfer_id = ack["transfer_id"]
        self.expect_delivery(transfer_id, targets)
        await self.upload_bytes(transfer_id, ack["upload_url"], ciphertext, on_progress)
        return SentDocument(transfer_id, metadata, targets, len(ciphertext))

    async def cancel(self, transfer_id: str) -> None:
        self.cancelled.add(transfer_id)
        await self._call("documents:cancel", {"transfer_id": transfer_id})

    def expect_delivery(self, transfer_id: str, recipients: Sequence[str]) -> None:
        """Track receipts of a transfer offered outside `send` (tests, the benchmark)."""
        self._deliveries[transfer_id] = _Delivery(set(recipients))

    def delivered(self, transfer_id: str) -> bool:
        """Whether every recipient of a transfer sent through this channel has answered."""
        delivery = self._deliveries.get(transfer_id)
        return delivery is not None and delivery.done.is_set()

    async def wait_delivered(self, transfer_id: str) -> dict[str, tuple[str, str | None]]:
        """Each recipient's verdict ("received" / "refused", reason) once all have answered."""
        delivery = self._deliveries[transfer_id]
        await delivery.done.wait()
        return dict(delivery.verdicts)

    async def receive(self, on_progress: Progress | None = None) -> ReceivedDocument:
        """The next incoming document, verified; refuses (and reports) anything that is not."""
        incoming = await self.incoming.get()
        transfer_id = incoming["transfer_id"]
        data = await self.download_bytes(transfer_id, incoming["download_url"],
                                         int(incoming["ciphertext_bytes"]), on_progress)
        try:
            document = await self.open(incoming, data)
        except DocumentError as exc:
            await self._call("documents:receipt", {"transfer_id": transfer_id,
                                                   "verdict": "refused", "reason": exc.code})
            raise
        meta = document.metadata
        await self._call("documents:receipt", {
            "transfer_id": transfer_id, "verdict": "received",
            "sha256": meta.sha256, "size": meta.size, "type": meta.type,
        })
        sender = self.peers[incoming["sender"]][document.suite]
        return ReceivedDocument(transfer_id, sender, meta, document.content, verified=True)

    async def open(self, incoming: dict[str, Any], data: bytes) -> DecryptedDocument:
        """Decrypt (in an executor) and check the sender's key against the attested one."""
        suite = int(incoming["suite"])
        if suite not in self.keys:
            raise DocumentError("bad_header", f"unknown suite {suite}")
        document = await asyncio.get_running_loop().run_in_executor(
            None, lambda: decrypt_document(data, self.keys[suite], max_bytes=self.max_bytes))
        attested = self.peers.get(incoming["sender"], {}).get(document.suite)
        if attested is None or attested.public_key != document.sender_public:
            raise DocumentError("sender_mismatch", incoming["sender"])
        return document
