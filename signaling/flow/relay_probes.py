"""Relay probes: a short "can this browser reach the media relay" connection (issue 18).

Two pages test the path to the relay before they need it: the kiosk's device self-test
(signaling/flow/kiosk_health.py, socket events `selftest:relay_*`) and the home customer's device
check (signaling/flow/remote_customer.py, `POST /join/<token>/probe…`). Both transports are thin
callers of this module, which owns the probe itself:

- `open_probe`: a throwaway room on a relay node the router chooses, with one participant that
  publishes audio; the browser answers the relay's offer with a peer connection of its own and
  sees whether ICE and DTLS come up (signaling/static/js/relay-probe.js). No media needs to
  flow: it tests the path. The ICE servers handed out are the principal's (TURN among them
  when configured).
- `find` (the owner's probe, on any process), `answer`, `close_probe`, `close_owned` (e.g. when
  the kiosk's socket goes), `close_all`;
- a closing timer (`ProbeKind.seconds`) and a per-process limit of open probes per kind;
- room ids `<prefix><owner label>-<unix seconds>-<probe>` ("selftest-…" for the kiosk,
  "probe-…" for the join page), so that the relay room sweep (signaling/flow/relay_failover.py)
  leaves a probe in progress alone (`live_probe_rooms`) and still closes what a dead process
  left behind.

Several processes. HAProxy balances each HTTP request on its own, so the join page's answer
and close may reach another process than the one that opened the probe. With Redis (the
process leases' client, signaling/flow/leases.py) every probe has a record
`<redis_channel>:relay-probe:<probe id>`, a hash (owner, process, node, room, participant, kind,
seconds, created) that expires `seconds + SWEEP_SLACK` after the probe opened, exactly while
the room sweep leaves its room alone. Any process finds the probe there, passes the answer to
its relay node (every process reaches every node) and closes it; whoever deletes the record
closes the room, so a probe is closed once. The opening process keeps the timer, the offer and
its per-process limit in `services.extras["relay_probes"]`; a probe another process closed is
dropped from there when it is next looked at. Without Redis, or while it does not answer, this
process's own probes are all there is (one process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from signaling.directory.principals import Principal
from signaling.flow.flow_common import FlowError, invalid
from signaling.flow.leases import leases_of
from signaling.transport.protocol import ErrorCode
from signaling.transport.services import Services

log = logging.getLogger(__name__)

SWEEP_SLACK = 10.0  # seconds past its lifetime before the room sweep takes a probe for a leftover


@dataclass(frozen=True)
class ProbeKind:
    """Who probes: the room prefix, the relay participant, lifetime and limits."""

    prefix: str  # room ids start with it; never "call-…" (the call listener ignores these)
    participant: str
    seconds: float  # the room is closed after this long in any case
    limit: int | None = None  # probes of this kind open at once in this process
    one_per_owner: bool = False  # a new probe ends the owner's older one


KIOSK = ProbeKind("selftest-", "selftest", 30.0, one_per_owner=True)
JOIN = ProbeKind("probe-", "probe", 20.0, limit=20)
KINDS = (KIOSK, JOIN)


@dataclass
class Probe:
    probe_id: str
    kind: ProbeKind
    owner: str  # who may answer and close it: a socket id, a join link, ...
    node: str
    room_id: str
    # What the opening process hands the browser; a probe read from its record has neither.
    offer: dict[str, Any] = field(default_factory=dict)
    ice_servers: list[dict[str, Any]] = field(default_factory=list)
    process: str = ""  # the lease id of the process that opened it ("" without Redis)
    created: float = 0.0  # unix seconds
    shared: bool = False  # its record is in Redis
    timer: asyncio.Task[None] | None = field(default=None, repr=False)


def probe_room_id(
    label: int, probe_id: str, now: float | None = None, kind: ProbeKind = KIOSK
) -> str:
    """`<prefix><label>-<unix seconds>-<probe>`: the time lets the relay sweep tell a probe in
    progress from one a dead process left behind (`is_live_probe_room`)."""
    return f"{kind.prefix}{label}-{int(time.time() if now is None else now)}-{probe_id}"


def _parts(room_id: str) -> tuple[ProbeKind, int, str] | None:
    """(kind, unix seconds, probe id) of a probe's room id, or None."""
    for kind in KINDS:
        if not room_id.startswith(kind.prefix):
            continue
        parts = room_id[len(kind.prefix) :].split("-", 2)
        try:
            return kind, int(parts[1]), parts[2]
        except (IndexError, ValueError):
            return None
    return None


def is_live_probe_room(room_id: str, now: float | None = None) -> bool:
    """A relay probe's room (of any kind) younger than its lifetime by the time in its name."""
    parsed = _parts(room_id)
    if parsed is None:
        return False
    kind, started, _probe_id = parsed
    return (time.time() if now is None else now) - started < kind.seconds + SWEEP_SLACK


async def live_probe_rooms(services: Services, room_ids: Iterable[str]) -> set[str]:
    """The rooms of `room_ids` that are relay probes in progress, which the room sweep leaves
    alone: young by the time in the name (any process's probe), or with their record still in
    Redis (its expiry runs on Redis's clock, so a signaling host whose clock runs ahead of the
    opener's does not take a live probe for a leftover)."""
    now = time.time()
    probes = {room: parsed for room in room_ids if (parsed := _parts(room)) is not None}
    live = {room for room in probes if is_live_probe_room(room, now)}
    rest = [room for room in probes if room not in live]
    shared = _shared(services)
    if shared is None or not rest:
        return live
    client, prefix, _process = shared
    try:
        async with client.pipeline(transaction=False) as pipe:
            for room in rest:
                pipe.hget(record_key(prefix, probes[room][2]), "room")
            recorded = await pipe.execute()
    except Exception as exc:
        log.warning("relay probe records not readable (%r); judging probe rooms by age", exc)
        return live
    return live | {room for room, found in zip(rest, recorded, strict=True) if found == room}


# --- the records in Redis ------------------------------------------------------------------------


def record_key(prefix: str, probe_id: str) -> str:
    return f"{prefix}:relay-probe:{probe_id}"


def _shared(services: Services) -> tuple[Any, str, str] | None:
    """(Redis client, key prefix, this process's lease id) with Redis, else None."""
    leases = leases_of(services)
    if leases is None or leases.redis is None:
        return None
    return leases.redis, leases.prefix, leases.process_id


def _kind_named(prefix: str, participant: str, seconds: float) -> ProbeKind:
    for kind in KINDS:
        if kind.prefix == prefix and kind.participant == participant:
            return kind
    return ProbeKind(prefix, participant, seconds)


def _from_record(probe_id: str, record: dict[str, str]) -> Probe | None:
    try:
        kind = _kind_named(record["kind"], record["participant"], float(record["seconds"]))
        return Probe(
            probe_id,
            kind,
            record["owner"],
            record["node"],
            record["room"],
            process=record["process"],
            created=float(record["created"]),
            shared=True,
        )
    except (KeyError, ValueError):
        return None


async def _save(services: Services, probe: Probe) -> None:
    """Write the probe's record (before its room opens, so no sweep sees the room without it)."""
    shared = _shared(services)
    if shared is None:
        return
    client, prefix, process = shared
    probe.process = process
    key = record_key(prefix, probe.probe_id)
    record = {
        "owner": probe.owner,
        "process": process,
        "node": probe.node,
        "room": probe.room_id,
        "participant": probe.kind.participant,
        "kind": probe.kind.prefix,
        "seconds": repr(probe.kind.seconds),
        "created": repr(probe.created),
    }
    try:
        async with client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=record)
            pipe.pexpire(key, int((probe.kind.seconds + SWEEP_SLACK) * 1000))
            await pipe.execute()
    except Exception as exc:
        log.warning("relay probe %s has no shared record (%r): this process alone knows it",
                    probe.room_id, exc)
        return
    probe.shared = True


def _forget(services: Services, probe: Probe) -> None:
    """Drop a probe from this process's book (another process closed it)."""
    if probes_of(services).get(probe.probe_id) is probe:
        del probes_of(services)[probe.probe_id]
    if probe.timer is not None and probe.timer is not asyncio.current_task():
        probe.timer.cancel()


async def _prune_closed_elsewhere(services: Services, probes: list[Probe]) -> None:
    shared = _shared(services)
    ours = [p for p in probes if p.shared]
    if shared is None or not ours:
        return
    client, prefix, _process = shared
    try:
        async with client.pipeline(transaction=False) as pipe:
            for probe in ours:
                pipe.exists(record_key(prefix, probe.probe_id))
            present = await pipe.execute()
    except Exception:
        return
    for probe, exists in zip(ours, present, strict=True):
        if not exists:
            _forget(services, probe)


# --- probes -------------------------------------------------------------------------------------


def probes_of(services: Services) -> dict[str, Probe]:
    """probe id -> Probe: the probes this process opened and has not seen closed."""
    found = services.extras.get("relay_probes")
    if not isinstance(found, dict):
        found = {}
        services.extras["relay_probes"] = found
    return found


async def find(services: Services, probe_id: str, owner: str) -> Probe | None:
    """The owner's open probe, opened by this process or another, or None (unknown, ended, or
    someone else's)."""
    local = probes_of(services).get(probe_id)
    shared = _shared(services)
    if shared is None or (local is not None and not local.shared):
        return local if local is not None and local.owner == owner else None
    client, prefix, _process = shared
    try:
        record = await client.hgetall(record_key(prefix, probe_id))
    except Exception as exc:
        log.warning("relay probe record not readable (%r); this process's probes only", exc)
        return local if local is not None and local.owner == owner else None
    found = _from_record(probe_id, record) if record else None
    if found is None:
        if local is not None:
            _forget(services, local)  # closed on another process
        return None
    if found.owner != owner:
        return None
    return local if local is not None else found


async def open_probe(
    services: Services,
    kind: ProbeKind,
    owner: str,
    label: int,
    principal: Principal,
    site: str | None = None,
) -> Probe:
    """Open a probe room on a relay node (near `site`); FlowError `unavailable` if it cannot."""
    from signaling.flow.calls import _router, ice_servers_for, relay_unavailable
    from signaling.transport.relay_placement import RelayUnavailable

    probes = probes_of(services)
    if kind.one_per_owner:
        for old in [p.probe_id for p in probes.values() if p.kind == kind and p.owner == owner]:
            await close_probe(services, old)
    if kind.limit is not None:
        open_now = [p for p in probes.values() if p.kind == kind]
        if len(open_now) >= kind.limit:
            await _prune_closed_elsewhere(services, open_now)
            if sum(p.kind == kind for p in probes.values()) >= kind.limit:
                raise FlowError(ErrorCode.UNAVAILABLE, "too many checks at once; try again")
    router = _router(services)
    try:
        node = router.choose(site)
        client = await router.client(node)
    except RelayUnavailable as exc:
        raise relay_unavailable(str(exc)) from exc
    probe_id = secrets.token_urlsafe(16)
    now = time.time()
    room_id = probe_room_id(label, probe_id, now, kind=kind)
    probe = Probe(probe_id, kind, owner, node, room_id, created=now)
    await _save(services, probe)
    try:
        probe.offer = await client.join(
            room_id, kind.participant, publish=["audio"], subscribe=False
        )
    except Exception as exc:
        with contextlib.suppress(Exception):
            await client.close_room(room_id)
        await _delete_record(services, probe)
        log.warning("relay probe %s could not open: %s", room_id, exc)
        raise relay_unavailable() from exc
    probe.ice_servers = ice_servers_for(services, principal)

    async def expire() -> None:
        await asyncio.sleep(kind.seconds)
        await close_probe(services, probe_id)

    probe.timer = asyncio.ensure_future(expire())
    probes[probe_id] = probe
    return probe


async def _delete_record(services: Services, probe: Probe) -> None:
    shared = _shared(services)
    if shared is not None and probe.shared:
        client, prefix, _process = shared
        with contextlib.suppress(Exception):
            await client.delete(record_key(prefix, probe.probe_id))


async def answer(services: Services, probe: Probe, sdp: str) -> None:
    """Give the relay the browser's answer; FlowError `invalid` (`bad_answer`) if refused."""
    from signaling.flow.calls import _router

    try:
        client = await _router(services).client(probe.node)
        await client.answer(probe.room_id, probe.kind.participant, sdp)
    except Exception as exc:
        message = getattr(exc, "message", str(exc))
        raise invalid(f"the relay refused the answer: {message}", "bad_answer") from exc


async def _claim(services: Services, probe_id: str, local: Probe | None) -> Probe | None:
    """The probe to close, taking its record: None when another process closed it first (or
    it expired). Without Redis, or without an answer from it, this process's own probe."""
    shared = _shared(services)
    if shared is None or (local is not None and not local.shared):
        return local
    client, prefix, _process = shared
    key = record_key(prefix, probe_id)
    try:
        async with client.pipeline(transaction=True) as pipe:
            pipe.hgetall(key)
            pipe.delete(key)
            record, deleted = await pipe.execute()
    except Exception as exc:
        log.warning("relay probe record not deleted (%r); closing this process's probe", exc)
        return local
    if not deleted:
        return None
    return _from_record(probe_id, record) or local


async def close_probe(services: Services, probe_id: str) -> None:
    """Close a probe's room, on whichever process it was opened (nothing if it has ended)."""
    local = probes_of(services).pop(probe_id, None)
    if local is not None and local.timer is not None and local.timer is not asyncio.current_task():
        local.timer.cancel()
    probe = await _claim(services, probe_id, local)
    if probe is None:
        return
    from signaling.flow.calls import close_relay_room

    await close_relay_room(services, probe.node, probe.room_id)


async def close_owned(services: Services, owner: str) -> None:
    for probe_id in [p.probe_id for p in probes_of(services).values() if p.owner == owner]:
        await close_probe(services, probe_id)


async def close_all(services: Services) -> None:
    for probe_id in list(probes_of(services)):
        with contextlib.suppress(Exception):
            await close_probe(services, probe_id)
