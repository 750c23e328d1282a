"""Checkpoints of the service log: its head, signed by the server, kept outside the database.

The hash chain (signaling/records/service_log.py) shows any change *inside* the log, but not the
loss
of its newest entries, an emptied log, or an entry rewritten with every later hash recomputed:
all of those are again a valid chain. A checkpoint pins the head where the database cannot
reach it:

    checkpoint = {"type": "etapalvelu.service_log.checkpoint", "log_id": "<settings.log_id>",
                  "seq": <head's sequence number>, "head_hash": "<its hash>",
                  "entries": <entries up to it>, "at": "<ISO time, UTC>"}

signed with the server's Ed25519 key over its canonical JSON (signaling.records.record_signing) and
appended as one line `{"checkpoint": …, "public_key": "<b64u>", "signature": "<b64u>"}` to the
checkpoint file (opened O_APPEND, fsynced). The key is `settings.checkpoint_key_path`
(PKCS#8 PEM, created at first start, mode 0600), the file `settings.checkpoint_file_path`.

When: right after each `record:file` commits (the ack waits for it: the write rate of the log
is a few records a minute per authority, one fsync each is nothing), and by a background task
every `log_checkpoint_seconds` when the head has moved (document receipts, other processes),
at start-up and at shutdown. A checkpoint is written only when the head differs from the last
one this process wrote or found in the file.

`verify_log` checks the chain, then every checkpoint line: its signature by a trusted key (the
server's, or the authority's own copy of it), its log id, and that the log still holds the
checkpointed entry with that hash and at least that many entries. Checkpoints can be exported
(`etapalvelu admin log export-checkpoints`) for an authority to keep; `verify --checkpoints`
checks the log against such a copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from signaling.config import ConfigError, Settings
from signaling.db import utcnow
from signaling.flow.flow_common import iso
from signaling.records.record_signing import (
    RecordSignatureError,
    public_key_b64u,
    sign_record,
    verify_record,
)
from signaling.records.service_log import (
    GENESIS_HASH,
    VerifyReport,
    last_entry,
    verify_chain,
    verify_entries,
)
from signaling.store.flow_models import ServiceLogEntry
from signaling.transport.http import services_of
from signaling.wire.canonical import CanonicalJSONError, b64u_decode, canonical_json

if TYPE_CHECKING:
    from aiohttp import web
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from signaling.transport.services import Services

log = logging.getLogger(__name__)

CHECKPOINT_TYPE = "etapalvelu.service_log.checkpoint"
KEY_MODE = 0o600
FILE_MODE = 0o600
HEX64 = re.compile(r"^[0-9a-f]{64}$")
EXTRA_KEY = "log_checkpointer"


class CheckpointError(ValueError):
    """A key or checkpoint that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Head:
    """The newest entry of the log (seq 0 and the genesis hash when it is empty)."""

    seq: int
    hash: str
    entries: int


@dataclass(frozen=True)
class Checkpoint:
    """One verified checkpoint line."""

    line: int
    log_id: str
    seq: int
    head_hash: str
    entries: int
    at: str
    public_key: str

    def describe(self) -> str:
        return f"the checkpoint of {self.at} (line {self.line})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "log_id": self.log_id,
            "seq": self.seq,
            "head_hash": self.head_hash,
            "entries": self.entries,
            "at": self.at,
            "public_key": self.public_key,
        }


# (verified checkpoints, problems, notes) of a CheckpointSource
Loaded = tuple[list[Checkpoint], list[str], list[str]]


# --- the server key ---------------------------------------------------------------------------


def load_key(path: Path) -> Ed25519PrivateKey:
    """The server's checkpoint key; FileNotFoundError when there is none yet."""
    data = path.read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(
            f"{path} is not an unencrypted PEM private key (the log checkpoint key)"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointError(f"{path} is not an Ed25519 key (the log checkpoint key)")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning(
            "log checkpoint key %s is readable by others (mode %o); chmod 600 it", path, mode
        )
    return key


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """Load the key, or create it (mode 0600) if there is none. Two processes starting at once
    end up with the same key: it is written to a private temporary file and linked into place,
    and the one that loses the race loads the winner's."""
    try:
        return load_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_MODE)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process made it first: use its key
    finally:
        os.unlink(tmp)
    _fsync_dir(path.parent)
    log.info("created the log checkpoint key %s", path)
    return load_key(path)


def public_key_pem(public_key: str) -> str:
    key = Ed25519PublicKey.from_public_bytes(b64u_decode(public_key))
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def parse_public_key(value: str) -> str:
    """A public key given on the command line: base64url of the 32 raw bytes, or a file holding
    that text, a PEM public key, or the PEM private key file itself. Returns base64url."""
    text = value.strip()
    candidate = Path(text)
    if len(text) != 43 and candidate.is_file():
        text = candidate.read_text(encoding="utf-8").strip()
        if "PRIVATE KEY" in text:
            try:
                return public_key_b64u(load_key(candidate))
            except CheckpointError as exc:
                raise CheckpointError(f"--public-key {value}: {exc}") from exc
        if "BEGIN PUBLIC KEY" in text:
            try:
                public = serialization.load_pem_public_key(text.encode("ascii"))
            except ValueError as exc:
                raise CheckpointError(f"--public-key {value}: not a PEM public key") from exc
            if not isinstance(public, Ed25519PublicKey):
                raise CheckpointError(f"--public-key {value}: not an Ed25519 key")
            return public_key_b64u(public)
    try:
        Ed25519PublicKey.from_public_bytes(b64u_decode(text))
    except ValueError as exc:
        raise CheckpointError(
            f"--public-key {value}: give the Ed25519 public key as 43 base64url characters, "
            "or a file with it (text or PEM)"
        ) from exc
    return text


# --- writing ----------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sign_checkpoint(
    key: Ed25519PrivateKey, *, log_id: str, head: Head, at: datetime
) -> dict[str, Any]:
    body = {
        "type": CHECKPOINT_TYPE,
        "log_id": log_id,
        "seq": head.seq,
        "head_hash": head.hash,
        "entries": head.entries,
        "at": iso(at),
    }
    return {
        "checkpoint": body,
        "public_key": public_key_b64u(key),
        "signature": sign_record(body, key),
    }


def append_line(path: Path, line: dict[str, Any]) -> None:
    """Append one checkpoint line: O_APPEND (several processes may share the file: each line is
    a single write), then fsync; the file is created with mode 0600, like the data folder's
    other files."""
    data = canonical_json(line) + b"\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
    try:
        if _ends_torn(path):
            data = b"\n" + data  # keep a fragment left by a crash on a line of its own
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        _fsync_dir(path.parent)


def _ends_torn(path: Path) -> bool:
    """Whether the file is non-empty and does not end with a newline."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell() == 0:
            return False
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) != b"\n"


async def read_head(session: AsyncSession) -> Head:
    last = await last_entry(session)
    if last is None:
        return Head(0, GENESIS_HASH, 0)
    count = (
        await session.execute(
            select(func.count()).select_from(ServiceLogEntry).where(ServiceLogEntry.seq <= last[0])
        )
    ).scalar_one()
    return Head(int(last[0]), str(last[1]), int(count))


def _last_line(path: Path, tail: int = 65536) -> dict[str, Any] | None:
    """The last complete, parsable line of the checkpoint file (None if there is none)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - tail))
            chunk = fh.read()
    except FileNotFoundError:
        return None
    for raw in reversed(chunk.split(b"\n")):
        with contextlib.suppress(ValueError):
            value = json.loads(raw)
            if isinstance(value, dict) and isinstance(value.get("checkpoint"), dict):
                return value
    return None


class LogCheckpointer:
    """Writes checkpoints of one database's log to one file (one per process)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession] | None,
        key: Ed25519PrivateKey,
        path: Path,
        log_id: str,
    ) -> None:
        self.sessions = sessions
        self.key = key
        self.path = path
        self.log_id = log_id
        self.public_key = public_key_b64u(key)
        self._lock = asyncio.Lock()
        self._last: tuple[int, str] | None = None
        last = _last_line(path)
        if last is not None and last.get("public_key") == self.public_key:
            seq, head_hash = last["checkpoint"].get("seq"), last["checkpoint"].get("head_hash")
            if isinstance(seq, int) and isinstance(head_hash, str):
                self._last = (seq, head_hash)

    @classmethod
    def from_settings(
        cls, settings: Settings, sessions: async_sessionmaker[AsyncSession] | None
    ) -> LogCheckpointer:
        try:
            key = load_or_create_key(settings.checkpoint_key_path)
        except OSError as exc:
            raise ConfigError(
                f"cannot use the log checkpoint key {settings.checkpoint_key_path}: "
                f"{exc.strerror or exc}"
            ) from exc
        except CheckpointError as exc:
            raise ConfigError(str(exc)) from exc
        return cls(sessions, key, settings.checkpoint_file_path, settings.log_id)

    async def checkpoint(
        self, *, force: bool = False, session: AsyncSession | None = None
    ) -> dict[str, Any] | None:
        """Write a checkpoint of the current head (if it moved since the last one, or `force`);
        returns the line written, or None. `session`: read the head through this one."""
        async with self._lock:
            if session is not None:
                head = await read_head(session)
            else:
                assert self.sessions is not None, "a checkpointer without sessions needs one"
                async with self.sessions() as own:
                    head = await read_head(own)
            if not force and (head.seq == 0 or (head.seq, head.hash) == self._last):
                return None
            line = sign_checkpoint(self.key, log_id=self.log_id, head=head, at=utcnow())
            await asyncio.to_thread(append_line, self.path, line)
            self._last = (head.seq, head.hash)
            return line

    async def checkpoint_quietly(self) -> None:
        """`checkpoint()` that logs a failure instead of raising: the entry is committed, and
        the next checkpoint (at the latest `log_checkpoint_seconds` later) covers it."""
        try:
            await self.checkpoint()
        except Exception:
            log.exception("cannot write a service log checkpoint to %s", self.path)

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.checkpoint_quietly()


async def checkpoint_after_append(services: Services) -> None:
    checkpointer = services.extras.get(EXTRA_KEY)
    if isinstance(checkpointer, LogCheckpointer):
        await checkpointer.checkpoint_quietly()


async def checkpointer_context(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup context: the checkpointer of the app's database (service_log.setup)."""
    services = services_of(app)
    settings = services.settings
    checkpointer = LogCheckpointer.from_settings(settings, services.sessions)
    services.extras[EXTRA_KEY] = checkpointer
    await checkpointer.checkpoint_quietly()  # a log that grew while we were not running
    task = asyncio.create_task(checkpointer.run(settings.log_checkpoint_seconds))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await checkpointer.checkpoint_quietly()
        services.extras.pop(EXTRA_KEY, None)


# --- reading and verifying --------------------------------------------------------------------


def parse_checkpoint_text(text: str) -> tuple[list[tuple[int, Any]], list[str]]:
    """The checkpoint lines of a file: JSON Lines as the server writes them, or the JSON object
    of `export-checkpoints --json` ({"checkpoints": [...]}). Returns (line number, value) pairs
    and notes. A line that is not JSON is a write cut short by a crash (or a garbled line,
    which is no worse than a deleted one): it is skipped with a note. Lines that are JSON but
    not a checkpoint signed by a trusted key make `verify` fail (check_line)."""
    if text.lstrip().startswith("{"):
        with contextlib.suppress(ValueError):
            whole = json.loads(text)
            if isinstance(whole, dict) and isinstance(whole.get("checkpoints"), list):
                return [(i + 1, v) for i, v in enumerate(whole["checkpoints"])], []
    values: list[tuple[int, Any]] = []
    notes: list[str] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            values.append((number, json.loads(raw)))
        except ValueError:
            notes.append(f"line {number} is not JSON (a write cut short?); skipped")
    return values, notes


def check_line(number: int, value: Any, trusted: set[str], log_id: str | None) -> Checkpoint:
    """A verified checkpoint, or CheckpointError saying what is wrong with the line."""
    where = f"checkpoint line {number}"
    if not isinstance(value, dict):
        raise CheckpointError(f"{where} is not a JSON object")
    body, public_key, signature = (
        value.get("checkpoint"),
        value.get("public_key"),
        value.get("signature"),
    )
    if (
        not isinstance(body, dict)
        or not isinstance(public_key, str)
        or not isinstance(signature, str)
    ):
        raise CheckpointError(f"{where} lacks checkpoint, public_key or signature")
    seq, head_hash, entries = body.get("seq"), body.get("head_hash"), body.get("entries")
    if (
        body.get("type") != CHECKPOINT_TYPE
        or not isinstance(body.get("log_id"), str)
        or not isinstance(body.get("at"), str)
        or not isinstance(seq, int)
        or isinstance(seq, bool)
        or seq < 0
        or not isinstance(entries, int)
        or isinstance(entries, bool)
        or entries < 0
        or not isinstance(head_hash, str)
        or not HEX64.match(head_hash)
    ):
        raise CheckpointError(f"{where} is not a service log checkpoint")
    if public_key not in trusted:
        raise CheckpointError(
            f"{where} is signed by the key {public_key[:12]}…, which is not the trusted "
            "checkpoint key (forged, or the server key was replaced)"
        )
    try:
        verify_record(body, signature, public_key)
    except RecordSignatureError as exc:
        raise CheckpointError(f"{where}: signature does not verify ({exc})") from exc
    if log_id is not None and body["log_id"] != log_id:
        raise CheckpointError(f"{where} belongs to the log {body['log_id']!r}, not to {log_id!r}")
    return Checkpoint(number, body["log_id"], seq, head_hash, entries, body["at"], public_key)


@dataclass(frozen=True)
class CheckpointSource:
    """Where the checkpoints come from and which keys may sign them."""

    path: Path
    trusted: frozenset[str]
    log_id: str | None
    # True when `path` is the server's own file (not an authority's copy given with
    # --checkpoints): a missing file is then reported as such.
    servers_own: bool = True

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        checkpoints: Path | None = None,
        public_keys: Iterable[str] = (),
    ) -> CheckpointSource:
        trusted = {parse_public_key(k) for k in public_keys}
        if not trusted:
            with contextlib.suppress(FileNotFoundError):
                trusted.add(public_key_b64u(load_key(settings.checkpoint_key_path)))
        return cls(
            path=checkpoints or settings.checkpoint_file_path,
            trusted=frozenset(trusted),
            log_id=settings.log_id,
            servers_own=checkpoints is None,
        )

    def load(self) -> Loaded:
        """(verified checkpoints, problems, notes)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return [], [], [f"no checkpoint file {self.path}"]
        except (OSError, UnicodeDecodeError) as exc:
            return [], [f"cannot read the checkpoint file {self.path}: {exc}"], []
        values, parse_notes = parse_checkpoint_text(text)
        notes = [f"{self.path}: {n}" for n in parse_notes]
        problems: list[str] = []
        if values and not self.trusted:
            problems.append(
                "no public key to check the checkpoints with: the server key "
                "is missing; give --public-key"
            )
            return [], problems, notes
        checkpoints = []
        for number, value in values:
            try:
                checkpoints.append(check_line(number, value, set(self.trusted), self.log_id))
            except CheckpointError as exc:
                problems.append(f"{self.path}: {exc}")
        return checkpoints, problems, notes


def compare(report: VerifyReport, checkpoints: list[Checkpoint]) -> tuple[int, str] | None:
    """The first disagreement between a valid chain and the checkpoints (lowest entry), as
    (entry number, problem), or None."""
    last_seq = report.entries  # the chain is valid: entries 1..N without gaps
    found: list[tuple[int, int, str]] = []  # (entry, -checkpoint seq, problem)
    # Checkpointed entries the log still agrees with: a rewritten entry lies after the last of
    # them below the first disagreeing one.
    agreed = [
        cp.seq
        for cp in checkpoints
        if 0 < cp.seq <= last_seq and report.watched.get(cp.seq) == cp.head_hash
    ]
    for cp in checkpoints:
        if cp.seq > last_seq:
            if last_seq == 0:
                found.append(
                    (
                        1,
                        -cp.seq,
                        f"the log is empty, but {cp.describe()} records {cp.entries} entries "
                        f"up to entry {cp.seq}: the log was emptied",
                    )
                )
            else:
                found.append(
                    (
                        last_seq + 1,
                        -cp.seq,
                        f"the log ends at entry {last_seq}, but {cp.describe()} records entry "
                        f"{cp.seq}: entries {last_seq + 1}..{cp.seq} were removed (truncated)",
                    )
                )
        elif cp.seq == 0:
            if cp.head_hash != GENESIS_HASH:
                found.append((1, 0, f"{cp.describe()} of the empty log has a non-genesis hash"))
        elif report.watched.get(cp.seq) != cp.head_hash:
            low = max((seq for seq in agreed if seq < cp.seq), default=0) + 1
            which = f"entry {low}" if low == cp.seq else f"an entry in {low}..{cp.seq}"
            found.append(
                (
                    cp.seq,
                    -cp.seq,
                    f"entry {cp.seq} differs from {cp.describe()}: checkpointed hash "
                    f"{cp.head_hash[:16]}…, log hash {str(report.watched.get(cp.seq))[:16]}…: "
                    f"the log was rewritten ({which} was changed and the hashes after it "
                    "recomputed)",
                )
            )
        elif report.entries < cp.entries:
            found.append(
                (
                    cp.seq,
                    -cp.seq,
                    f"the log has {report.entries} entries, fewer than the {cp.entries} of "
                    f"{cp.describe()}",
                )
            )
    if not found:
        return None
    # The lowest entry; for a truncation the checkpoint furthest ahead says most.
    seq, _order, problem = min(found)
    return seq, problem


def judge(report: VerifyReport, source: CheckpointSource, loaded: Loaded) -> VerifyReport:
    """Add the checkpoint verdict (`loaded` = source.load()) to a chain report."""
    checkpoints, problems, notes = loaded[0], loaded[1], list(loaded[2])
    if report.unsigned_service:
        notes.append(
            f"unsigned service records (filed before signatures were required, or their "
            f"signature removed): entries {_seq_list(report.unsigned_service)}"
        )
    latest = max(checkpoints, key=lambda c: (c.seq, c.line), default=None)
    extra: dict[str, Any] = {
        "checkpoint": None if latest is None else latest.as_dict(),
        "checkpoints_checked": len(checkpoints),
        "unanchored": 0 if latest is None else max(0, report.entries - latest.seq),
        "notes": tuple(notes),
    }
    if not report.ok:
        return replace(report, **extra)
    if problems:
        return replace(report, ok=False, broken_seq=None, problem=problems[0], **extra)
    disagreement = compare(report, checkpoints)
    if disagreement is not None:
        seq, problem = disagreement
        return replace(report, ok=False, broken_seq=seq, problem=problem, **extra)
    if latest is None and report.entries > 0:
        where = (
            f"the checkpoint file {source.path} is missing or empty"
            if source.servers_own
            else f"{source.path} has no checkpoints"
        )
        return replace(
            report,
            ok=False,
            broken_seq=None,
            problem=(
                f"no checkpoint anchors the log's {report.entries} entries: {where} (after an "
                "upgrade, write the first one with `etapalvelu admin log checkpoint`)"
            ),
            **extra,
        )
    return replace(report, **extra)


def _seq_list(seqs: tuple[int, ...], limit: int = 10) -> str:
    shown = ", ".join(str(s) for s in seqs[:limit])
    return shown + (f" and {len(seqs) - limit} more" if len(seqs) > limit else "")


async def verify_log(session: AsyncSession, source: CheckpointSource) -> VerifyReport:
    """The hash chain, every signature, and the checkpoints of `source`."""
    loaded = await asyncio.to_thread(source.load)
    report = await verify_chain(session, watch={c.seq for c in loaded[0]})
    return judge(report, source, loaded)


async def verify_export(entries: list[dict[str, Any]], source: CheckpointSource) -> VerifyReport:
    """Like verify_log, over a whole-log JSON export (`admin log export --format json`):
    what an authority can run with its own checkpoints, without access to the database."""
    loaded = source.load()
    rows = [_export_row(item) for item in entries]

    async def each() -> AsyncIterator[ServiceLogEntry]:
        for row in rows:
            yield row

    report = await verify_entries(each(), watch={c.seq for c in loaded[0]})
    return judge(report, source, loaded)


def _export_row(item: Any) -> ServiceLogEntry:
    if not isinstance(item, dict) or not isinstance(item.get("record"), dict):
        raise CheckpointError("the export is not a list of log entries with a `record`")
    record = item["record"]
    try:
        text = canonical_json(record).decode("utf-8")
    except CanonicalJSONError as exc:
        raise CheckpointError(f"entry {item.get('seq')}: {exc}") from exc
    call_id = record.get("call_id")
    # The column `check_entry` expects: the signer of a signed kind (service, desk).
    from signaling.records.service_log import filer_id

    expert_id = (
        record.get("expert_id")
        if item.get("kind") == "service"
        else filer_id(record, str(item.get("kind")))
    )
    return ServiceLogEntry(
        seq=item.get("seq"),
        kind=item.get("kind"),
        filed_at=item.get("filed_at"),
        month=item.get("month"),
        call_id=call_id if isinstance(call_id, int) else None,
        expert_id=expert_id if isinstance(expert_id, int) else None,
        record=text,
        signature=item.get("signature"),
        signer_public_key=item.get("signer_public_key"),
        prev_hash=item.get("prev_hash"),
        hash=item.get("hash"),
    )


def read_checkpoint_lines(path: Path, after_seq: int = -1) -> list[dict[str, Any]]:
    """The parsable lines of a checkpoint file with seq > after_seq (for export)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    values, _problems = parse_checkpoint_text(text)
    lines = []
    for _number, value in values:
        if isinstance(value, dict) and isinstance(value.get("checkpoint"), dict):
            seq = value["checkpoint"].get("seq")
            if isinstance(seq, int) and seq > after_seq:
                lines.append(value)
    return lines
