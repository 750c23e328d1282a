"""Build tests/vectors/documents/*.json (run: .venv/bin/python tests/endpoint/document_vectors.py).

The vectors are committed; this script documents how each was made and rebuilds them when the
format changes. Keys are derived from fixed labels so a rebuild is byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from endpoint.document_crypto import (  # noqa: E402
    SUITE_P256,
    SUITE_X25519,
    CallKeyPair,
    DocumentMetadata,
    _seal,
    encrypt_document,
    parse_header,
)
from signaling.records.record_signing import sign_record  # noqa: E402
from signaling.wire.canonical import b64u_decode, b64u_encode, canonical_json  # noqa: E402

VECTOR_DIR = ROOT / "tests" / "vectors" / "documents"


def key(label: str, suite: int) -> CallKeyPair:
    seed = hashlib.sha256(label.encode()).digest()
    if suite == SUITE_X25519:
        return CallKeyPair(suite, x25519.X25519PrivateKey.from_private_bytes(seed))
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    scalar = int.from_bytes(seed, "big") % n
    return CallKeyPair(suite, ec.derive_private_key(scalar, ec.SECP256R1()))


def det(label: str, length: int) -> bytes:
    return hashlib.sha256(label.encode()).digest()[:length]


def content(kind: str, length: int) -> bytes:
    prefix = {"pdf": b"%PDF-1.7\n", "png": b"\x89PNG\r\n\x1a\n", "jpeg": b"\xff\xd8\xff\xe0",
              "tiff": b"II*\x00"}[kind]
    body = b"".join(hashlib.sha256(bytes([i % 256])).digest() for i in range(length // 32 + 1))
    return (prefix + body)[:length]


def encrypt_vector(name: str, suite: int, chunk_size: int, kind: str, length: int,
                   recipients: int) -> dict[str, Any]:
    sender = key(f"{name} sender", suite)
    keys = [key(f"{name} recipient {i}", suite) for i in range(recipients)]
    plaintext = content(kind, length)
    meta = DocumentMetadata.describe(f"{name}.{kind}", plaintext)
    file_key, file_id = det(f"{name} file key", 32), det(f"{name} file id", 16)
    ciphertext = encrypt_document(plaintext, meta, sender, [k.public_bytes for k in keys],
                                  chunk_size=chunk_size, file_key=file_key, file_id=file_id)
    return {
        "description": f"{name}: suite {suite}, {length} bytes in chunks of {chunk_size}",
        "suite": suite,
        "chunk_size": chunk_size,
        "sender_private_pkcs8": sender.pkcs8().hex(),
        "sender_public": sender.public_bytes.hex(),
        "sender_fingerprint": sender.fingerprint,
        "recipients": [{"private_pkcs8": k.pkcs8().hex(), "public": k.public_bytes.hex(),
                        "fingerprint": k.fingerprint} for k in keys],
        "file_key": file_key.hex(),
        "file_id": file_id.hex(),
        "metadata": meta.as_dict(),
        "plaintext": plaintext.hex(),
        "ciphertext": ciphertext.hex(),
    }


def flip(data: bytes, offset: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[offset] ^= 1 << bit
    return bytes(out)


def refuse_cases(base: dict[str, Any]) -> list[dict[str, Any]]:
    ct = bytes.fromhex(base["ciphertext"])
    header = parse_header(ct)
    h = header.length
    meta_len = struct.unpack(">I", ct[h : h + 4])[0]
    payload = h + 4 + meta_len
    step = base["chunk_size"] + 16
    chunks = [ct[o : o + step] for o in range(payload, len(ct), step)]
    assert len(chunks) == 4, len(chunks)
    head = ct[:payload]
    me = base["recipients"][0]["private_pkcs8"]
    size = base["metadata"]["size"]
    cases: list[tuple[str, bytes, str]] = [
        ("magic altered", flip(ct, 0), "bad_header"),
        ("version 2", ct[:5] + b"\x02" + ct[6:], "bad_header"),
        ("unknown suite", ct[:6] + b"\x07" + ct[7:], "bad_header"),
        ("no recipients", ct[:7] + b"\x00" + ct[8:], "bad_header"),
        ("chunk size not a power of two", ct[:8] + struct.pack(">I", 65535) + ct[12:],
         "bad_header"),
        ("chunk size changed to another power of two", ct[:8] + struct.pack(">I", 128) + ct[12:],
         "header_mac"),
        ("header cut short", ct[:40], "bad_header"),
        ("file id bit flipped", flip(ct, 12), "wrong_key"),
        ("sender key bit flipped", flip(ct, 30, 3), "wrong_key"),
        ("recipient id bit flipped", flip(ct, 28 + 32), "not_a_recipient"),
        ("wrapped key bit flipped", flip(ct, 28 + 32 + 8 + 5), "wrong_key"),
        ("commitment bit flipped", flip(ct, h - 64), "commitment"),
        ("header MAC bit flipped", flip(ct, h - 1, 7), "header_mac"),
        ("second stanza bit flipped", flip(ct, 28 + 32 + 88 + 20), "header_mac"),
        ("metadata length changed", ct[:h] + struct.pack(">I", meta_len - 1) + ct[h + 4 :],
         "metadata"),
        ("metadata bit flipped", flip(ct, h + 4 + 3), "metadata"),
        ("metadata cut short", ct[: h + 10], "truncated"),
    ]
    for i in range(4):
        cases.append((f"chunk {i} bit flipped", flip(ct, payload + i * step + 7, 2),
                      "chunk_auth"))
        cases.append((f"chunk {i} tag bit flipped",
                      flip(ct, payload + i * step + len(chunks[i]) - 1), "chunk_auth"))
    cases += [
        ("chunk 1 missing", head + chunks[0] + chunks[2] + chunks[3], "truncated"),
        ("chunk 1 repeated (inserted)", head + chunks[0] + chunks[1] + chunks[1] + chunks[2]
         + chunks[3], "trailing_data"),
        ("chunk 1 repeated in place of chunk 2", head + chunks[0] + chunks[1] + chunks[1]
         + chunks[3], "chunk_auth"),
        ("chunks 1 and 2 swapped", head + chunks[0] + chunks[2] + chunks[1] + chunks[3],
         "chunk_auth"),
        ("final chunk dropped (cut at a chunk boundary)", head + b"".join(chunks[:3]),
         "truncated"),
        ("cut inside the final chunk", ct[:-5], "truncated"),
        ("only the header", head, "truncated"),
        ("one trailing byte", ct + b"\x00", "trailing_data"),
    ]
    out = [{"name": n, "recipient_private_pkcs8": me, "max_bytes": 50 * 2**20,
            "ciphertext": c.hex(), "error": e} for n, c, e in cases]
    outsider = key("outsider", SUITE_X25519)
    out.append({"name": "not encrypted for this key", "recipient_private_pkcs8":
                outsider.pkcs8().hex(), "max_bytes": 50 * 2**20, "ciphertext": ct.hex(),
                "error": "not_a_recipient"})
    other_suite = key("outsider p256", SUITE_P256)
    out.append({"name": "recipient of another suite", "recipient_private_pkcs8":
                other_suite.pkcs8().hex(), "max_bytes": 50 * 2**20, "ciphertext": ct.hex(),
                "error": "not_a_recipient"})
    out.append({"name": "larger than the receiver's limit", "recipient_private_pkcs8": me,
                "max_bytes": size - 1, "ciphertext": ct.hex(), "error": "too_large"})
    out += malicious_sender_cases(base)
    return out


def malicious_sender_cases(base: dict[str, Any]) -> list[dict[str, Any]]:
    """Documents a sender holding valid keys could craft; the receiver must still refuse them."""
    sender = CallKeyPair.from_pkcs8(bytes.fromhex(base["sender_private_pkcs8"]))
    me = CallKeyPair.from_pkcs8(bytes.fromhex(base["recipients"][0]["private_pkcs8"]))
    other = CallKeyPair.from_pkcs8(bytes.fromhex(base["recipients"][1]["private_pkcs8"]))
    plaintext = bytes.fromhex(base["plaintext"])
    good = DocumentMetadata.describe("x.pdf", plaintext)
    chunk = base["chunk_size"]

    def seal(meta: dict[str, Any], body: bytes, label: str) -> str:
        return _seal(body, canonical_json(meta), sender, [me.public_bytes], chunk,
                     det(label, 32), det(label + " id", 16)).hex()

    exe = b"MZ\x90\x00" + plaintext[4:]
    cases = [
        ("declared type not allowed", seal({**good.as_dict(), "type": "application/x-msdownload",
                                            "sha256": hashlib.sha256(exe).hexdigest()}, exe,
                                           "m1"), "type_not_allowed"),
        ("content does not match its SHA-256", seal(
            {**good.as_dict(), "sha256": "00" * 32}, plaintext, "m2"), "hash_mismatch"),
        ("PDF content declared as PNG", seal({**good.as_dict(), "type": "image/png"}, plaintext,
                                             "m3"), "type_mismatch"),
        ("executable content declared as PDF", seal(
            {**good.as_dict(), "sha256": hashlib.sha256(exe).hexdigest()}, exe, "m4"),
         "type_mismatch"),
        ("file name with a path", seal({**good.as_dict(), "name": "../../etc/passwd"}, plaintext,
                                       "m5"), "metadata"),
        ("metadata with an extra field", seal({**good.as_dict(), "x": 1}, plaintext, "m6"),
         "metadata"),
        ("size larger than the content", seal({**good.as_dict(), "size": len(plaintext) + 1},
                                              plaintext, "m7"), "truncated"),
    ]
    out = [{"name": n, "recipient_private_pkcs8": base["recipients"][0]["private_pkcs8"],
            "max_bytes": 50 * 2**20, "ciphertext": c, "error": e} for n, c, e in cases]

    # A co-recipient re-uses the sender's stanza for recipient 0 with content of its own: it
    # knows file_key, so it can MAC the header, but the stanza pins the metadata digest.
    ct = bytes.fromhex(base["ciphertext"])
    file_key, file_id = bytes.fromhex(base["file_key"]), bytes.fromhex(base["file_id"])
    forged_body = content("pdf", 100)
    forged_meta = DocumentMetadata.describe("forged.pdf", forged_body)
    forged = _seal(forged_body, forged_meta.to_json(), sender, [me.public_bytes,
                   other.public_bytes], chunk, file_key, file_id)
    h = parse_header(ct).length
    stanzas_start = 28 + 32
    # Keep the forged file's own derivations but splice in the sender's original stanzas.
    spliced = bytearray(forged)
    spliced[stanzas_start : stanzas_start + 2 * 88] = ct[stanzas_start : stanzas_start + 2 * 88]
    from endpoint.document_crypto import _file_keys

    keys = _file_keys(file_key, file_id)
    import hmac as _hmac

    spliced[h - 32 : h] = _hmac.digest(keys.mac_key, bytes(spliced[: h - 32]), "sha256")
    # Re-encrypt the metadata record under the new header (the co-recipient can: it knows
    # meta_key), so the only thing left to catch it is the digest inside the stanza.
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    meta_len = struct.unpack(">I", forged[h : h + 4])[0]
    record = AESGCM(keys.meta_key).encrypt(bytes(12), forged_meta.to_json(), bytes(spliced[:h]))
    assert len(record) == meta_len
    spliced[h + 4 : h + 4 + meta_len] = record
    out.append({"name": "co-recipient re-uses the sender's stanza with other content",
                "recipient_private_pkcs8": base["recipients"][0]["private_pkcs8"],
                "max_bytes": 50 * 2**20, "ciphertext": bytes(spliced).hex(),
                "error": "metadata"})
    return out


def canonical_vectors() -> dict[str, Any]:
    inputs = [
        '{"b":2,"a":1}',
        '{ "z": [3, 2, {"y": null, "x": true}], "a": false }',
        '{"name":"Äänekoski \\u00e5 \\ud83d\\ude00","tab":"a\\tb","ctl":"\\u001f\\u007f"}',
        '{"\\ud83d\\ude00":1,"\\uffff":2,"a":3,"\\u00e4":4}',
        '[9007199254740991,-9007199254740991,0,"\\"\\\\/"]',
        '"\\b\\f\\n\\r\\u2028\\u0000"',
        '{"nested":{"b":[],"a":{}},"":""}',
    ]
    # The canonical bytes come from the reference implementation; the browser must match them.
    valid = [{"input": text, "canonical": canonical_json(json.loads(text)).decode("utf-8")}
             for text in inputs]
    invalid = [
        {"input": '{"a":1.5}', "why": "float"},
        {"input": '{"a":1e3}', "why": "exponent"},
        {"input": '{"a":9007199254740992}', "why": "integer beyond 2^53-1"},
        {"input": '{"a":1,"a":2}', "why": "duplicate key"},
        {"input": '{"a":"\\ud800"}', "why": "lone surrogate"},
        {"input": '{"a":NaN}', "why": "NaN"},
        {"input": '{"a":', "why": "not JSON"},
    ]
    return {"valid": valid, "invalid": invalid}


def record_vectors() -> dict[str, Any]:
    seed = hashlib.sha256(b"record signer").digest()
    signer = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    public = signer.public_key().public_bytes_raw()
    record = {
        "type": "etapalvelu.service_record.v1",
        "call_id": "c-2026-0001",
        "expert": {"id": 7, "name": "Eeva Asiantuntija"},
        "started_at": "2026-11-23T09:00:00Z",
        "ended_at": "2026-11-23T09:21:40Z",
        "documents": [{"sha256": "ab" * 32, "size": 123456, "type": "application/pdf",
                       "sender": "endpoint:3", "receiver": "user:7",
                       "received_at": "2026-11-23T09:10:02Z"}],
    }
    signature = sign_record(record, signer)
    tampered = json.loads(json.dumps(record))
    tampered["documents"][0]["size"] = 123457
    other = ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"other").digest())
    return {
        "private_seed": seed.hex(),
        "private_pkcs8": signer.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()).hex(),
        "public_key": b64u_encode(public),
        "record": record,
        "canonical": canonical_json(record).decode("utf-8"),
        "signature": signature,
        "refuse": [
            {"name": "record changed after signing", "record": tampered,
             "signature": signature, "public_key": b64u_encode(public)},
            {"name": "signature by another key", "record": record,
             "signature": sign_record(record, other), "public_key": b64u_encode(public)},
            {"name": "signature bit flipped", "record": record,
             "signature": b64u_encode(flip(b64u_decode(signature), 10)),
             "public_key": b64u_encode(public)},
        ],
    }


def main() -> None:
    VECTOR_DIR.mkdir(parents=True, exist_ok=True)
    vectors = {
        "encrypt-x25519-chunks": encrypt_vector("x25519-chunks", SUITE_X25519, 64, "pdf", 200, 2),
        "encrypt-x25519-exact": encrypt_vector("x25519-exact", SUITE_X25519, 64, "png", 128, 1),
        "encrypt-x25519-default": encrypt_vector("x25519-default", SUITE_X25519, 65536, "jpeg",
                                                 1000, 1),
        "encrypt-p256-chunks": encrypt_vector("p256-chunks", SUITE_P256, 128, "tiff", 300, 2),
    }
    for name, vector in vectors.items():
        write(name, vector)
    cases = refuse_cases(vectors["encrypt-x25519-chunks"])
    for case in cases:
        me = CallKeyPair.from_pkcs8(bytes.fromhex(case["recipient_private_pkcs8"]))
        case["recipient_suite"] = me.suite
        case["recipient_public"] = me.public_bytes.hex()
    write("refuse", {"description": "tampered documents and the error each must raise",
                     "cases": cases})
    write("canonical-json", canonical_vectors())
    write("record-signature", record_vectors())


def write(name: str, value: Any) -> None:
    path = VECTOR_DIR / f"{name}.json"
    path.write_text(json.dumps(value, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
