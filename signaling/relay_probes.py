"""Relay probes: a short "can this browser reach the media relay" connection (issue 18).

Two pages test the path to the relay before they need it: the kiosk's device self-test
(signaling/kiosk_health.py, socket events `selftest:relay_*`) and the home customer's device
check (signaling/remote_customer.py, `POST /join/<token>/probe…`). Both transports are thin
callers of this module, which owns the probe itself:

- `open_probe`: a throwaway room on a relay node the router chooses, with one participant that
  publishes audio; the browser answers the relay's offer with a peer connection of its own and
  sees whether ICE and DTLS come up (signaling/static/js/relay-probe.js). No media needs to
  flow: it tests the path. The ICE servers handed out are the principal's (TURN among them
  when configured).
- `answer`, `close_probe`, `close_owned` (e.g. when the kiosk's socket goes), `close_all`;
- a closing timer (`ProbeKind.seconds`) and a per-process limit of open probes per kind;
- room ids `<prefix><owner label>-<unix seconds>-<probe>` ("selftest-…" for the kiosk,
  "probe-…" for the join page), so that the relay room sweep (signaling/relay_failover.py)
  leaves a probe in progress alone (`is_live_probe_room`) and still closes what a dead process
  left behind.

The bookkeeping lives in `services.extras["relay_probes"]`: probes are this process's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from signaling.flow_common import FlowError, invalid
from signaling.protocol import ErrorCode, Principal
from signaling.services import Services

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
    offer: dict[str, Any]
    ice_servers: list[dict[str, Any]]
    timer: asyncio.Task[None] | None = field(default=None, repr=False)


def probe_room_id(
    label: int, probe_id: str, now: float | None = None, kind: ProbeKind = KIOSK
) -> str:
    """`<prefix><label>-<unix seconds>-<probe>`: the time lets the relay sweep tell a probe in
    progress from one a dead process left behind (`is_live_probe_room`)."""
    return f"{kind.prefix}{label}-{int(time.time() if now is None else now)}-{probe_id}"


def is_live_probe_room(room_id: str, now: float | None = None) -> bool:
    """A relay probe's room (of any kind) younger than its lifetime: the room sweep leaves it."""
    for kind in KINDS:
        if not room_id.startswith(kind.prefix):
            continue
        parts = room_id[len(kind.prefix) :].split("-", 2)
        try:
            started = int(parts[1])
        except (IndexError, ValueError):
            return False
        return (time.time() if now is None else now) - started < kind.seconds + SWEEP_SLACK
    return False


def probes_of(services: Services) -> dict[str, Probe]:
    """probe id -> Probe: this process's open probes."""
    found = services.extras.get("relay_probes")
    if not isinstance(found, dict):
        found = {}
        services.extras["relay_probes"] = found
    return found


def find(services: Services, probe_id: str, owner: str) -> Probe | None:
    """The owner's open probe, or None (unknown, ended, or someone else's)."""
    probe = probes_of(services).get(probe_id)
    return probe if probe is not None and probe.owner == owner else None


async def open_probe(
    services: Services,
    kind: ProbeKind,
    owner: str,
    label: int,
    principal: Principal,
    site: str | None = None,
) -> Probe:
    """Open a probe room on a relay node (near `site`); FlowError `unavailable` if it cannot."""
    from signaling.calls import _router, ice_servers_for, relay_unavailable
    from signaling.relay_placement import RelayUnavailable

    probes = probes_of(services)
    if kind.one_per_owner:
        for old in [p.probe_id for p in probes.values() if p.kind == kind and p.owner == owner]:
            await close_probe(services, old)
    if kind.limit is not None and sum(p.kind == kind for p in probes.values()) >= kind.limit:
        raise FlowError(ErrorCode.UNAVAILABLE, "too many checks at once; try again")
    router = _router(services)
    try:
        node = router.choose(site)
        client = await router.client(node)
    except RelayUnavailable as exc:
        raise relay_unavailable(str(exc)) from exc
    probe_id = secrets.token_urlsafe(16)
    room_id = probe_room_id(label, probe_id, kind=kind)
    try:
        offer = await client.join(room_id, kind.participant, publish=["audio"], subscribe=False)
    except Exception as exc:
        with contextlib.suppress(Exception):
            await client.close_room(room_id)
        log.warning("relay probe %s could not open: %s", room_id, exc)
        raise relay_unavailable() from exc
    probe = Probe(probe_id, kind, owner, node, room_id, offer, ice_servers_for(services, principal))

    async def expire() -> None:
        await asyncio.sleep(kind.seconds)
        await close_probe(services, probe_id)

    probe.timer = asyncio.ensure_future(expire())
    probes[probe_id] = probe
    return probe


async def answer(services: Services, probe: Probe, sdp: str) -> None:
    """Give the relay the browser's answer; FlowError `invalid` (`bad_answer`) if refused."""
    from signaling.calls import _router

    try:
        client = await _router(services).client(probe.node)
        await client.answer(probe.room_id, probe.kind.participant, sdp)
    except Exception as exc:
        message = getattr(exc, "message", str(exc))
        raise invalid(f"the relay refused the answer: {message}", "bad_answer") from exc


async def close_probe(services: Services, probe_id: str) -> None:
    """Close a probe's room (nothing if it has ended already)."""
    probe = probes_of(services).pop(probe_id, None)
    if probe is None:
        return
    if probe.timer is not None and probe.timer is not asyncio.current_task():
        probe.timer.cancel()
    from signaling.calls import close_relay_room

    await close_relay_room(services, probe.node, probe.room_id)


async def close_owned(services: Services, owner: str) -> None:
    for probe_id in [p.probe_id for p in probes_of(services).values() if p.owner == owner]:
        await close_probe(services, probe_id)


async def close_all(services: Services) -> None:
    for probe_id in list(probes_of(services)):
        with contextlib.suppress(Exception):
            await close_probe(services, probe_id)
