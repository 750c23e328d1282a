"""End-to-end encryption of documents: the byte format of docs/document-protocol.md.

One ciphertext per document, readable by each listed recipient: a random file key wrapped to
every recipient with X25519 (or P-256) ECDH + HKDF, a key-committing header MAC, and a STREAM
payload of AES-256-GCM chunks with counter nonces and a final-chunk flag. The browser twin is
`signaling/static/js/document-crypto.js`; both pass `tests/vectors/documents/`.

Decryption returns the content only after every check has passed, so a refused document leaves
nothing partial behind. These functions are CPU-bound on big buffers: call them in an executor.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from signaling.wire.canonical import CanonicalJSONError, canonical_json, parse_json

__all__ = [
    "ALLOWED_TYPES",
    "DEFAULT_CHUNK_SIZE",
    "SUITE_P256",
    "SUITE_X25519",
    "CallKeyPair",
    "DecryptedDocument",
    "DocumentError",
    "DocumentMetadata",
    "ciphertext_length",
    "decrypt_document",
    "encrypt_document",
    "fingerprint",
    "max_ciphertext_bytes",
    "sniff_type",
]

MAGIC = b"ETDOC"
VERSION = 1
SUITE_X25519 = 1
SUITE_P256 = 2
PUBLIC_KEY_LENGTH = {SUITE_X25519: 32, SUITE_P256: 65}
MAX_RECIPIENTS = 16
MIN_CHUNK_SIZE = 1 << 6
MAX_CHUNK_SIZE = 1 << 22
DEFAULT_CHUNK_SIZE = 1 << 16
TAG = 16
STANZA_LENGTH = 8 + 64 + TAG
FIXED_HEADER = 28
META_MAX = 4096
ZERO_NONCE = bytes(12)

# The content types we accept and the leading bytes each must start with (checked after
# decryption, so a PDF label cannot smuggle in something else).
ALLOWED_TYPES: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/tiff": (b"II*\x00", b"MM\x00*"),
}

ERROR_MESSAGES = {
    "bad_header": "the document header is damaged or not a document of this format",
    "not_a_recipient": "this document was not encrypted for you",
    "wrong_key": "the document key cannot be opened with your key",
    "commitment": "the document key commitment does not match",
    "header_mac": "the document header has been altered",
    "metadata": "the document description is damaged or altered",
    "type_not_allowed": "this file type is not allowed (PDF, JPEG, PNG or TIFF only)",
    "too_large": "the document is larger than allowed",
    "truncated": "the document is incomplete: part of it is missing",
    "trailing_data": "the document has extra data after its end",
    "chunk_auth": "part of the document is damaged, missing, repeated or out of order",
    "hash_mismatch": "the document content does not match its fingerprint (SHA-256)",
    "type_mismatch": "the document content is not of the type it claims",
    "bad_input": "the document cannot be encrypted",
    "sender_mismatch": "the document was not sent with the key the server attested for its sender",
}


class DocumentError(ValueError):
    """A document was refused. `code` is one of the protocol's error codes (§4)."""

    def __init__(self, code: str, detail: str = "") -> None:
        message = ERROR_MESSAGES.get(code, code)
        super().__init__(f"{message} ({detail})" if detail else message)
        self.code = code
        self.detail = detail


def sniff_type(content: bytes) -> str | None:
    """The allowed type whose magic bytes `content` starts with, if any."""
    for mime, prefixes in ALLOWED_TYPES.items():
        if any(content.startswith(prefix) for prefix in prefixes):
            return mime
    return None


_HEX64 = re.compile(r"[0-9a-f]{64}")
_BAD_NAME = re.compile(r"[/\\\x00-\x1f\x7f]")


@dataclass(frozen=True)
class DocumentMetadata:
    name: str
    type: str
    size: int
    sha256: str

    @classmethod
    def describe(cls, name: str, content: bytes, mime: str | None = None) -> DocumentMetadata:
        """Metadata for a file about to be sent; the type comes from its magic bytes."""
        sniffed = sniff_type(content)
        if sniffed is None:
            raise DocumentError("type_not_allowed", "unrecognised content")
        if mime is not None and mime != sniffed:
            raise DocumentError("type_mismatch", f"{name} looks like {sniffed}, not {mime}")
        meta = cls(name, sniffed, len(content), hashlib.sha256(content).hexdigest())
        meta.validate()
        return meta

    def validate(self) -> None:
        if not isinstance(self.name, str) or not 1 <= len(self.name) <= 255:
            raise DocumentError("metadata", "name must be 1-255 characters")
        if _BAD_NAME.search(self.name) or self.name in (".", ".."):
            raise DocumentError("metadata", "name contains a path or control character")
        if self.type not in ALLOWED_TYPES:
            raise DocumentError("type_not_allowed", str(self.type))
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise DocumentError("metadata", "size must be a non-negative integer")
        if not isinstance(self.sha256, str) or not _HEX64.fullmatch(self.sha256):
            raise DocumentError("metadata", "sha256 must be 64 lower-case hex digits")

    def to_json(self) -> bytes:
        return canonical_json(
            {"name": self.name, "sha256": self.sha256, "size": self.size, "type": self.type}
        )

    @classmethod
    def from_json(cls, data: bytes) -> DocumentMetadata:
        try:
            value = parse_json(data.decode("utf-8"))
            # Exactly canonical, so that both implementations accept the same byte strings.
            canonical = canonical_json(value)
        except (CanonicalJSONError, UnicodeDecodeError) as exc:
            raise DocumentError("metadata", "not canonical JSON") from exc
        if canonical != data:
            raise DocumentError("metadata", "not canonical JSON")
        if not isinstance(value, dict) or set(value) != {"name", "sha256", "size", "type"}:
            raise DocumentError("metadata", "unexpected fields")
        meta = cls(value["name"], value["type"], value["size"], value["sha256"])
        if meta.type not in ALLOWED_TYPES:
            raise DocumentError("type_not_allowed", str(meta.type)[:40])
        meta.validate()
        return meta

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "size": self.size, "sha256": self.sha256}


def fingerprint(suite: int, public_key: bytes) -> str:
    """Four groups of five digits that two people can read to each other (§1)."""
    digest = hashlib.sha256(
        b"etapalvelu-doc v1 fingerprint" + bytes([suite]) + public_key
    ).digest()
    groups = [int.from_bytes(digest[5 * i : 5 * i + 5], "big") % 100000 for i in range(4)]
    return " ".join(f"{group:05d}" for group in groups)


PrivateKey = x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey


class CallKeyPair:
    """A participant's key-agreement key for one call."""

    def __init__(self, suite: int, private_key: PrivateKey) -> None:
        self.suite = suite
        self.private_key = private_key
        if isinstance(private_key, x25519.X25519PrivateKey):
            if suite != SUITE_X25519:
                raise ValueError("an X25519 key belongs to suite 1")
            self.public_bytes = private_key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        else:
            if suite != SUITE_P256 or not isinstance(private_key.curve, ec.SECP256R1):
                raise ValueError("a P-256 key belongs to suite 2")
            self.public_bytes = private_key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )

    @classmethod
    def generate(cls, suite: int = SUITE_X25519) -> CallKeyPair:
        if suite == SUITE_X25519:
            return cls(suite, x25519.X25519PrivateKey.generate())
        if suite == SUITE_P256:
            return cls(suite, ec.generate_private_key(ec.SECP256R1()))
        raise ValueError(f"unknown suite {suite}")

    @classmethod
    def from_pkcs8(cls, der: bytes) -> CallKeyPair:
        key = serialization.load_der_private_key(der, password=None)
        if isinstance(key, x25519.X25519PrivateKey):
            return cls(SUITE_X25519, key)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return cls(SUITE_P256, key)
        raise ValueError("not an X25519 or P-256 private key")

    def pkcs8(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.suite, self.public_bytes)

    def exchange(self, peer_public: bytes) -> bytes:
        """ECDH with a peer's encoded public key; ValueError if the key is unusable."""
        if len(peer_public) != PUBLIC_KEY_LENGTH[self.suite]:
            raise ValueError("public key has the wrong length")
        if isinstance(self.private_key, x25519.X25519PrivateKey):
            shared = self.private_key.exchange(
                x25519.X25519PublicKey.from_public_bytes(peer_public)
            )
            if not any(shared):  # RFC 7748 §6.1: a low-order point gives all zeros
                raise ValueError("low-order public key")
            return shared
        peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), peer_public)
        return self.private_key.exchange(ec.ECDH(), peer)


def _hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


@dataclass(frozen=True)
class _FileKeys:
    commitment: bytes
    mac_key: bytes
    meta_key: bytes
    payload_key: bytes


def _file_keys(file_key: bytes, file_id: bytes) -> _FileKeys:
    k = _hkdf(file_key, file_id, b"etapalvelu-doc v1 keys", 128)
    return _FileKeys(k[0:32], k[32:64], k[64:96], k[96:128])


def _wrap_key(shared: bytes, file_id: bytes, suite: int, sender: bytes, recipient: bytes) -> bytes:
    info = b"etapalvelu-doc v1 wrap" + bytes([suite]) + sender + recipient
    return _hkdf(shared, file_id, info, 32)


def _recipient_id(public_key: bytes) -> bytes:
    return hashlib.sha256(public_key).digest()[:8]


def _nonce(index: int, final: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


def _chunk_count(size: int, chunk_size: int) -> int:
    return max(1, -(-size // chunk_size))


def header_length(suite: int, recipients: int) -> int:
    return FIXED_HEADER + PUBLIC_KEY_LENGTH[suite] + STANZA_LENGTH * recipients + 64


def ciphertext_length(
    size: int, *, meta_length: int, suite: int, recipients: int, chunk_size: int
) -> int:
    """The exact ciphertext length of a `size`-byte document (§3)."""
    chunks = _chunk_count(size, chunk_size)
    return header_length(suite, recipients) + 4 + meta_length + TAG + size + TAG * chunks


def max_ciphertext_bytes(size: int) -> int:
    """An upper bound of the ciphertext length of any valid `size`-byte document.

    The server cannot read the header's chunk size or metadata; it bounds uploads with this.
    """
    return ciphertext_length(
        size,
        meta_length=META_MAX,
        suite=SUITE_P256,
        recipients=MAX_RECIPIENTS,
        chunk_size=MIN_CHUNK_SIZE,
    )


def encrypt_document(
    content: bytes,
    metadata: DocumentMetadata,
    sender: CallKeyPair,
    recipients: Sequence[bytes],
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    file_key: bytes | None = None,
    file_id: bytes | None = None,
) -> bytes:
    """Encrypt `content` for every recipient public key (all of the sender's suite).

    `file_key` and `file_id` are for test vectors only; leave them None.
    """
    metadata.validate()
    if metadata.size != len(content):
        raise DocumentError("bad_input", "metadata size differs from the content")
    if hashlib.sha256(content).hexdigest() != metadata.sha256:
        raise DocumentError("bad_input", "metadata sha256 differs from the content")
    if sniff_type(content) != metadata.type:
        raise DocumentError("type_mismatch", f"content is not {metadata.type}")
    if not 1 <= len(recipients) <= MAX_RECIPIENTS:
        raise DocumentError("bad_input", f"1 to {MAX_RECIPIENTS} recipients")
    if chunk_size & (chunk_size - 1) or not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise DocumentError("bad_input", "chunk size must be a power of two, 64 B - 4 MiB")
    meta_json = metadata.to_json()
    if len(meta_json) > META_MAX:
        raise DocumentError("bad_input", "metadata too long")
    return _seal(content, meta_json, sender, recipients, chunk_size, file_key, file_id)


def _seal(
    content: bytes,
    meta_json: bytes,
    sender: CallKeyPair,
    recipients: Sequence[bytes],
    chunk_size: int,
    file_key: bytes | None,
    file_id: bytes | None,
) -> bytes:
    """The format itself, without the sender-side checks (test vectors use it directly to
    build what a malicious sender could send)."""
    file_key = os.urandom(32) if file_key is None else file_key
    file_id = os.urandom(16) if file_id is None else file_id
    keys = _file_keys(file_key, file_id)
    secret = file_key + hashlib.sha256(meta_json).digest()

    header = bytearray(MAGIC)
    header += bytes([VERSION, sender.suite, len(recipients)])
    header += chunk_size.to_bytes(4, "big") + file_id + sender.public_bytes
    for recipient in recipients:
        try:
            shared = sender.exchange(recipient)
        except ValueError as exc:
            raise DocumentError("bad_input", f"unusable recipient key: {exc}") from exc
        wrap = _wrap_key(shared, file_id, sender.suite, sender.public_bytes, recipient)
        header += _recipient_id(recipient) + AESGCM(wrap).encrypt(ZERO_NONCE, secret, None)
    header += keys.commitment
    header += hmac.digest(keys.mac_key, bytes(header), "sha256")

    meta_record = AESGCM(keys.meta_key).encrypt(ZERO_NONCE, meta_json, bytes(header))
    parts = [bytes(header), len(meta_record).to_bytes(4, "big"), meta_record]
    aead = AESGCM(keys.payload_key)
    view = memoryview(content)
    chunks = _chunk_count(len(content), chunk_size)
    for index in range(chunks):
        piece = view[index * chunk_size : (index + 1) * chunk_size]
        parts.append(aead.encrypt(_nonce(index, index == chunks - 1), piece, None))
    return b"".join(parts)


@dataclass(frozen=True)
class DocumentHeader:
    suite: int
    chunk_size: int
    file_id: bytes
    sender_public: bytes
    stanzas: tuple[tuple[bytes, bytes], ...]
    commitment: bytes
    mac: bytes
    length: int  # header bytes, MAC included


def parse_header(data: bytes) -> DocumentHeader:
    """Parse and bounds-check the plaintext header (§3); raises DocumentError('bad_header')."""
    if len(data) < FIXED_HEADER or data[:5] != MAGIC:
        raise DocumentError("bad_header", "not an encrypted document")
    if data[5] != VERSION:
        raise DocumentError("bad_header", f"unsupported version {data[5]}")
    suite, count = data[6], data[7]
    if suite not in PUBLIC_KEY_LENGTH:
        raise DocumentError("bad_header", f"unknown suite {suite}")
    if not 1 <= count <= MAX_RECIPIENTS:
        raise DocumentError("bad_header", "recipient count out of range")
    chunk_size = int.from_bytes(data[8:12], "big")
    if chunk_size & (chunk_size - 1) or not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise DocumentError("bad_header", "chunk size out of range")
    length = header_length(suite, count)
    if len(data) < length:
        raise DocumentError("bad_header", "header is cut short")
    key_end = FIXED_HEADER + PUBLIC_KEY_LENGTH[suite]
    stanzas = tuple(
        (data[offset : offset + 8], data[offset + 8 : offset + STANZA_LENGTH])
        for offset in range(key_end, key_end + STANZA_LENGTH * count, STANZA_LENGTH)
    )
    return DocumentHeader(
        suite=suite,
        chunk_size=chunk_size,
        file_id=bytes(data[12:28]),
        sender_public=bytes(data[FIXED_HEADER:key_end]),
        stanzas=stanzas,
        commitment=bytes(data[length - 64 : length - 32]),
        mac=bytes(data[length - 32 : length]),
        length=length,
    )


@dataclass(frozen=True)
class DecryptedDocument:
    metadata: DocumentMetadata
    content: bytes
    sender_public: bytes
    suite: int

    @property
    def sender_fingerprint(self) -> str:
        return fingerprint(self.suite, self.sender_public)


def decrypt_document(
    data: bytes, recipient: CallKeyPair, *, max_bytes: int
) -> DecryptedDocument:
    """Open a document; every check of §4 in order. Raises DocumentError, returns all or nothing.

    The caller decides whether `sender_public` is the key the server attested for the sender.
    """
    header = parse_header(data)
    if header.suite != recipient.suite:
        raise DocumentError("not_a_recipient", "the document uses another key type")
    my_id = _recipient_id(recipient.public_bytes)
    wrapped = next((w for rid, w in header.stanzas if hmac.compare_digest(rid, my_id)), None)
    if wrapped is None:
        raise DocumentError("not_a_recipient")
    try:
        shared = recipient.exchange(header.sender_public)
        wrap = _wrap_key(
            shared, header.file_id, header.suite, header.sender_public, recipient.public_bytes
        )
        secret = AESGCM(wrap).decrypt(ZERO_NONCE, wrapped, None)
    except (ValueError, InvalidTag) as exc:
        raise DocumentError("wrong_key") from exc
    file_key, meta_digest = secret[:32], secret[32:]
    keys = _file_keys(file_key, header.file_id)
    if not hmac.compare_digest(keys.commitment, header.commitment):
        raise DocumentError("commitment")
    expected_mac = hmac.digest(keys.mac_key, data[: header.length - 32], "sha256")
    if not hmac.compare_digest(expected_mac, header.mac):
        raise DocumentError("header_mac")

    offset = header.length
    if len(data) < offset + 4:
        raise DocumentError("truncated", "metadata missing")
    meta_length = int.from_bytes(data[offset : offset + 4], "big")
    if not TAG + 1 <= meta_length <= META_MAX + TAG:
        raise DocumentError("metadata", "length out of range")
    offset += 4
    if len(data) < offset + meta_length:
        raise DocumentError("truncated", "metadata cut short")
    try:
        meta_json = AESGCM(keys.meta_key).decrypt(
            ZERO_NONCE, data[offset : offset + meta_length], data[: header.length]
        )
    except InvalidTag as exc:
        raise DocumentError("metadata", "authentication failed") from exc
    if not hmac.compare_digest(hashlib.sha256(meta_json).digest(), meta_digest):
        raise DocumentError("metadata", "does not match the sender's key stanza")
    metadata = DocumentMetadata.from_json(meta_json)
    if metadata.size > max_bytes:
        raise DocumentError("too_large", f"{metadata.size} bytes, limit {max_bytes}")
    offset += meta_length

    chunk_size = header.chunk_size
    chunks = _chunk_count(metadata.size, chunk_size)
    payload_length = metadata.size + TAG * chunks
    available = len(data) - offset
    # The authenticated size fixes the payload length: check it before any chunk (§4 step 5).
    if available < payload_length:
        raise DocumentError("truncated", f"{payload_length - available} bytes missing")
    if available > payload_length:
        raise DocumentError("trailing_data", f"{available - payload_length} extra bytes")
    aead = AESGCM(keys.payload_key)
    view = memoryview(data)
    plain: list[bytes] = []
    for index in range(chunks):
        start = offset + index * (chunk_size + TAG)
        end = min(start + chunk_size + TAG, len(data))
        try:
            plain.append(aead.decrypt(_nonce(index, index == chunks - 1), view[start:end], None))
        except InvalidTag as exc:
            raise DocumentError("chunk_auth", f"chunk {index} of {chunks}") from exc
    content = b"".join(plain)
    if hashlib.sha256(content).hexdigest() != metadata.sha256:
        raise DocumentError("hash_mismatch")
    if sniff_type(content) != metadata.type:
        raise DocumentError("type_mismatch", f"declared {metadata.type}")
    return DecryptedDocument(metadata, content, header.sender_public, header.suite)

