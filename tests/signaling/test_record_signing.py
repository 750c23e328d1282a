"""Canonical JSON and Ed25519 record signatures against the shared vectors."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.records.record_signing import (
    RecordSignatureError,
    generate_signing_key_file,
    load_signing_key,
    public_key_b64u,
    sign_record,
    verify_record,
)
from signaling.wire.canonical import CanonicalJSONError, b64u_decode, canonical_json, parse_json

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "documents"
CANON = json.loads((VECTORS / "canonical-json.json").read_text(encoding="utf-8"))
RECORD = json.loads((VECTORS / "record-signature.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CANON["valid"], ids=lambda c: c["input"][:30])
def test_canonical_vectors(case: dict[str, str]) -> None:
    assert canonical_json(parse_json(case["input"])) == case["canonical"].encode("utf-8")


@pytest.mark.parametrize("case", CANON["invalid"], ids=lambda c: c["why"])
def test_canonical_refusals(case: dict[str, str]) -> None:
    with pytest.raises(CanonicalJSONError):
        canonical_json(parse_json(case["input"]))


def test_known_canonical_bytes() -> None:
    value = {"b": [1, True, None], "a": "Åbo\n", "é": 0, "\U0001f600": 1, "\uffff": 2}
    expected = '{"a":"Åbo\\n","b":[1,true,null],"é":0,"😀":1,"\uffff":2}'
    assert canonical_json(value) == expected.encode()


def test_record_vector_signs_and_verifies() -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(RECORD["private_seed"]))
    assert public_key_b64u(key) == RECORD["public_key"]
    assert canonical_json(RECORD["record"]).decode() == RECORD["canonical"]
    assert sign_record(RECORD["record"], key) == RECORD["signature"]
    # Whitespace and key order of the export do not matter: it is re-canonicalised.
    pretty = json.dumps(RECORD["record"], indent=2, sort_keys=False)
    verify_record(pretty, RECORD["signature"], RECORD["public_key"])
    verify_record(RECORD["record"], RECORD["signature"], b64u_decode(RECORD["public_key"]))


@pytest.mark.parametrize("case", RECORD["refuse"], ids=lambda c: c["name"])
def test_record_refusals(case: dict[str, Any]) -> None:
    with pytest.raises(RecordSignatureError, match="signature does not match"):
        verify_record(case["record"], case["signature"], case["public_key"])


def test_record_changed_after_signing_is_caught() -> None:
    key = Ed25519PrivateKey.generate()
    record = {"call_id": "c1", "documents": [{"sha256": "00" * 32, "size": 10}]}
    signature = sign_record(record, key)
    verify_record(json.dumps(record), signature, public_key_b64u(key))
    record["documents"][0]["size"] = 11  # type: ignore[index]
    with pytest.raises(RecordSignatureError, match="changed after signing"):
        verify_record(json.dumps(record), signature, public_key_b64u(key))


@pytest.mark.parametrize(
    ("record", "signature", "key", "message"),
    [
        ('{"a":1.5}', "A" * 86, None, "not canonical JSON"),
        ('{"a":1,"a":2}', "A" * 86, None, "duplicate key"),
        ("[1]", "A" * 86, None, "must be a JSON object"),
        ('{"a":1}', "A" * 86, "short", "not an Ed25519 key"),
        ('{"a":1}', "A" * 80, None, "must be 64 bytes"),
        ('{"a":1}', "***", None, "not base64url"),
    ],
)
def test_malformed_inputs_have_clear_messages(
    record: str, signature: str, key: str | None, message: str
) -> None:
    public = key if key is not None else RECORD["public_key"]
    with pytest.raises(RecordSignatureError, match=message):
        verify_record(record, signature, public)


def test_passphrase_protected_key_file(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "expert.pem"
    public = generate_signing_key_file(path, b"correct horse battery staple")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
    key = load_signing_key(path, b"correct horse battery staple")
    assert public_key_b64u(key) == public
    with pytest.raises(ValueError, match="wrong passphrase"):
        load_signing_key(path, b"wrong")
    with pytest.raises(FileExistsError):
        generate_signing_key_file(path, b"again")  # never overwrite a signing key


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_canonical_json_round_trips(value: Any) -> None:
    try:
        text = canonical_json(value)
    except CanonicalJSONError:
        return  # lone surrogates from st.text()
    assert canonical_json(parse_json(text)) == text
    assert json.loads(text) == value


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_verify_never_crashes(data: bytes) -> None:
    with pytest.raises(RecordSignatureError):
        verify_record(data, RECORD["signature"], RECORD["public_key"])


def test_standalone_verification_snippet_in_the_protocol_doc(tmp_path: Path) -> None:
    """The snippet an authority is told to run (docs/document-protocol.md §6) really works."""
    import re
    import subprocess
    import sys

    doc = (Path(__file__).resolve().parents[2] / "docs" / "document-protocol.md").read_text()
    section = doc[doc.index("### Verifying an export without our server"):]
    snippet = re.search(r"```python\n(.*?)```", section, re.S)
    assert snippet is not None
    entry = {"record": RECORD["record"], "signature": RECORD["signature"],
             "signer_public_key": RECORD["public_key"]}
    (tmp_path / "record.json").write_text(json.dumps(entry, indent=2), encoding="utf-8")
    (tmp_path / "verify.py").write_text(snippet.group(1), encoding="utf-8")
    done = subprocess.run([sys.executable, "verify.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "signature valid" in done.stdout, done.stderr
    entry["record"]["outcome"] = "changed"
    (tmp_path / "record.json").write_text(json.dumps(entry), encoding="utf-8")
    done = subprocess.run([sys.executable, "verify.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "InvalidSignature" in done.stderr
