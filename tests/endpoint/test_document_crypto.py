"""The document format in Python against the shared vectors, plus bad input and fuzzing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from endpoint.document_crypto import (
    SUITE_P256,
    SUITE_X25519,
    CallKeyPair,
    DocumentError,
    DocumentMetadata,
    ciphertext_length,
    decrypt_document,
    encrypt_document,
    fingerprint,
    max_ciphertext_bytes,
    parse_header,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "documents"
ENCRYPT_VECTORS = sorted(VECTORS.glob("encrypt-*.json"))
REFUSE = json.loads((VECTORS / "refuse.json").read_text())["cases"]
LIMIT = 50 * 2**20


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", ENCRYPT_VECTORS, ids=lambda p: p.stem)
def test_vector_encrypts_byte_for_byte(path: Path) -> None:
    v = load(path)
    sender = CallKeyPair.from_pkcs8(bytes.fromhex(v["sender_private_pkcs8"]))
    assert sender.public_bytes.hex() == v["sender_public"]
    assert sender.fingerprint == v["sender_fingerprint"]
    meta = DocumentMetadata(**v["metadata"])
    ciphertext = encrypt_document(
        bytes.fromhex(v["plaintext"]),
        meta,
        sender,
        [bytes.fromhex(r["public"]) for r in v["recipients"]],
        chunk_size=v["chunk_size"],
        file_key=bytes.fromhex(v["file_key"]),
        file_id=bytes.fromhex(v["file_id"]),
    )
    assert ciphertext.hex() == v["ciphertext"]
    assert len(ciphertext) == ciphertext_length(
        meta.size,
        meta_length=len(meta.to_json()),
        suite=v["suite"],
        recipients=len(v["recipients"]),
        chunk_size=v["chunk_size"],
    )
    assert len(ciphertext) <= max_ciphertext_bytes(meta.size)


@pytest.mark.parametrize("path", ENCRYPT_VECTORS, ids=lambda p: p.stem)
def test_vector_decrypts_for_every_recipient(path: Path) -> None:
    v = load(path)
    for r in v["recipients"]:
        me = CallKeyPair.from_pkcs8(bytes.fromhex(r["private_pkcs8"]))
        assert me.fingerprint == r["fingerprint"]
        doc = decrypt_document(bytes.fromhex(v["ciphertext"]), me, max_bytes=LIMIT)
        assert doc.content.hex() == v["plaintext"]
        assert doc.metadata.as_dict() == v["metadata"]
        assert doc.sender_public.hex() == v["sender_public"]


@pytest.mark.parametrize("case", REFUSE, ids=[c["name"] for c in REFUSE])
def test_refused_with_the_expected_code(case: dict[str, Any]) -> None:
    me = CallKeyPair.from_pkcs8(bytes.fromhex(case["recipient_private_pkcs8"]))
    with pytest.raises(DocumentError) as caught:
        decrypt_document(bytes.fromhex(case["ciphertext"]), me, max_bytes=case["max_bytes"])
    assert caught.value.code == case["error"]
    assert str(caught.value)  # a readable message, not just a code


def test_every_truncation_is_refused() -> None:
    v = load(VECTORS / "encrypt-x25519-chunks.json")
    data = bytes.fromhex(v["ciphertext"])
    me = CallKeyPair.from_pkcs8(bytes.fromhex(v["recipients"][0]["private_pkcs8"]))
    for cut in range(len(data)):
        with pytest.raises(DocumentError) as caught:
            decrypt_document(data[:cut], me, max_bytes=LIMIT)
        assert caught.value.code in {"bad_header", "truncated", "metadata"}, cut


def test_every_single_bit_flip_is_refused() -> None:
    v = load(VECTORS / "encrypt-x25519-exact.json")
    data = bytes.fromhex(v["ciphertext"])
    me = CallKeyPair.from_pkcs8(bytes.fromhex(v["recipients"][0]["private_pkcs8"]))
    for offset in range(len(data)):
        damaged = bytearray(data)
        damaged[offset] ^= 0x10
        with pytest.raises(DocumentError):
            decrypt_document(bytes(damaged), me, max_bytes=LIMIT)


@pytest.mark.parametrize("suite", [SUITE_X25519, SUITE_P256])
def test_round_trip_with_fresh_keys(suite: int) -> None:
    sender, a, b = (CallKeyPair.generate(suite) for _ in range(3))
    content = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 700
    meta = DocumentMetadata.describe("kuva.jpg", content)
    data = encrypt_document(content, meta, sender, [a.public_bytes, b.public_bytes],
                            chunk_size=4096)
    for me in (a, b):
        assert decrypt_document(data, me, max_bytes=LIMIT).content == content
    # Two encryptions of one file differ (fresh file key and id).
    assert encrypt_document(content, meta, sender, [a.public_bytes]) != encrypt_document(
        content, meta, sender, [a.public_bytes]
    )


def test_sender_refuses_disallowed_or_mislabelled_files() -> None:
    with pytest.raises(DocumentError) as caught:
        DocumentMetadata.describe("virus.exe", b"MZ\x90\x00 executable")
    assert caught.value.code == "type_not_allowed"
    with pytest.raises(DocumentError) as caught:
        DocumentMetadata.describe("scan.png", b"%PDF-1.4 ...", "image/png")
    assert caught.value.code == "type_mismatch"
    with pytest.raises(DocumentError) as caught:
        DocumentMetadata.describe("a/b.pdf", b"%PDF-1.4")
    assert caught.value.code == "metadata"


def test_fingerprint_format() -> None:
    text = fingerprint(SUITE_X25519, bytes(32))
    groups = text.split(" ")
    assert len(groups) == 4 and all(len(g) == 5 and g.isdigit() for g in groups)
    assert fingerprint(SUITE_X25519, bytes(31) + b"\x01") != text


def test_low_order_sender_key_is_refused() -> None:
    v = load(VECTORS / "encrypt-x25519-exact.json")
    data = bytearray(bytes.fromhex(v["ciphertext"]))
    data[28:60] = bytes(32)  # the all-zero point has order 4 (RFC 7748 §6.1)
    me = CallKeyPair.from_pkcs8(bytes.fromhex(v["recipients"][0]["private_pkcs8"]))
    with pytest.raises(DocumentError) as caught:
        decrypt_document(bytes(data), me, max_bytes=LIMIT)
    assert caught.value.code == "wrong_key"


def test_committed_vectors_are_current() -> None:
    """The generator reproduces the committed files (so nobody edits vectors by hand)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "document_vectors", Path(__file__).with_name("document_vectors.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fresh = module.encrypt_vector("x25519-chunks", SUITE_X25519, 64, "pdf", 200, 2)
    assert fresh == load(VECTORS / "encrypt-x25519-chunks.json")


_BASE = load(VECTORS / "encrypt-x25519-chunks.json")
_BASE_DATA = bytes.fromhex(_BASE["ciphertext"])
_ME = CallKeyPair.from_pkcs8(bytes.fromhex(_BASE["recipients"][0]["private_pkcs8"]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_fuzz_random_bytes_never_crash(data: bytes) -> None:
    with pytest.raises(DocumentError):
        decrypt_document(data, _ME, max_bytes=LIMIT)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.integers(0, len(_BASE_DATA) - 1), st.integers(1, 255), max_size=8),
    st.integers(0, len(_BASE_DATA)),
)
def test_fuzz_mutated_documents_are_refused(edits: dict[int, int], cut: int) -> None:
    data = bytearray(_BASE_DATA)
    for offset, xor in edits.items():
        data[offset] ^= xor
    if not edits and cut == len(data):
        return  # unchanged: nothing to refuse
    with pytest.raises(DocumentError):
        decrypt_document(bytes(data[:cut]), _ME, max_bytes=LIMIT)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=28, max_size=600))
def test_fuzz_header_parser(data: bytes) -> None:
    data = b"ETDOC\x01" + data[6:]
    try:
        header = parse_header(data)
    except DocumentError as exc:
        assert exc.code == "bad_header"
    else:
        assert header.length <= len(data)
