"""Canonical JSON and Ed25519 signatures of service records (docs/document-protocol.md §6).

A service record is signed over its canonical JSON bytes so that anyone holding the expert's
public key — an authority auditing an export, years later — can verify it without our server.
Canonical JSON here is the integer-only subset of RFC 8785 (JCS): sorted keys (UTF-16 code
units), no whitespace, UTF-8, minimal string escapes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from signaling.wire.canonical import (
    CanonicalJSONError,
    b64u_decode,
    b64u_encode,
    canonical_json,
    parse_json,
)

__all__ = [
    "RecordSignatureError",
    "generate_signing_key_file",
    "load_signing_key",
    "public_key_b64u",
    "sign_record",
    "verify_record",
]


class RecordSignatureError(ValueError):
    """A service record's signature does not verify; the message says why."""


def public_key_b64u(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return b64u_encode(
        public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


def sign_record(record: Mapping[str, Any], private_key: Ed25519PrivateKey) -> str:
    """Sign the record's canonical JSON; returns the 64-byte signature as base64url."""
    return b64u_encode(private_key.sign(canonical_json(record)))


def verify_record(
    record_json: str | bytes | Mapping[str, Any], signature: str, public_key: str | bytes
) -> None:
    """Check a record's signature; raise `RecordSignatureError` with the reason if it fails.

    `record_json` is the record as a JSON text or as an already parsed object; either way it is
    re-canonicalised, so the signature holds whatever whitespace or key order the export used.
    `public_key` is the base64url text of the 32 raw bytes (as stored in
    `users.signing_public_key`) or the raw bytes.
    """
    try:
        record = (
            record_json if isinstance(record_json, Mapping) else parse_json(record_json)
        )
        if not isinstance(record, Mapping):
            raise CanonicalJSONError("a service record must be a JSON object")
        message = canonical_json(record)
    except CanonicalJSONError as exc:
        raise RecordSignatureError(f"record is not canonical JSON: {exc}") from exc
    try:
        raw_key = public_key if isinstance(public_key, bytes) else b64u_decode(public_key)
        key = Ed25519PublicKey.from_public_bytes(raw_key)
    except ValueError as exc:
        raise RecordSignatureError(
            "public key is not an Ed25519 key (32 bytes, base64url)"
        ) from exc
    try:
        raw_signature = b64u_decode(signature)
    except ValueError as exc:
        raise RecordSignatureError("signature is not base64url") from exc
    if len(raw_signature) != 64:
        raise RecordSignatureError("signature must be 64 bytes")
    try:
        key.verify(raw_signature, message)
    except InvalidSignature as exc:
        raise RecordSignatureError(
            "signature does not match: the record was changed after signing, or it was signed "
            "with another key"
        ) from exc


def generate_signing_key_file(path: Path, passphrase: bytes) -> str:
    """Create a passphrase-protected PKCS#8 Ed25519 key file; returns the public key (b64u)."""
    if not passphrase:
        raise ValueError("a signing key needs a passphrase")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created owner-only: the passphrase protects the key, the mode keeps others from trying.
    with open(path, "xb", opener=lambda p, flags: os.open(p, flags, 0o600)) as fh:
        fh.write(pem)
    return public_key_b64u(key)


def load_signing_key(path: Path, passphrase: bytes) -> Ed25519PrivateKey:
    """Load a key file made by `generate_signing_key_file`; a wrong passphrase raises ValueError."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=passphrase)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"cannot open signing key {path}: wrong passphrase or not a key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 key")
    return key
