"""Process leases in Redis: who is connected anywhere, and what happens when a process dies.

Only with `redis_url` (several signaling processes). Each process holds a lease, the key
`<redis_channel>:proc:<process id>` with a TTL of `process_lease_seconds`, renewed every third
of it. Its sockets' principals are registered under it, in the hash
`<redis_channel>:proc-sockets:<process id>` (`user:<id>` / `endpoint:<id>` -> open sockets),
and the process id is in the set `<redis_channel>:procs`.

- A person or kiosk is connected while any live process (lease present) has a socket of his:
  `held_anywhere`. Presence marks him offline on a disconnect only when none has.
- `max_sockets_per_user` / `max_sockets_per_endpoint` count sockets on every live process:
  `register` checks and adds in one Lua script, so concurrent connects on several processes
  cannot both slip past the limit.
- `allow_event`: at most `rate_limit_principal_events` events per `rate_limit_window` seconds
  from one person or kiosk over all his sockets on all processes (a fixed-window counter,
  INCR + PEXPIRE), in addition to the per-socket bucket of signaling/server/dispatch.py.
- When a lease expires (the process was killed, or its host lost), a sweeper marks that
  process's people and kiosks offline in the database, unless another live process holds a
  socket of theirs, pushes `presence:changed`, runs the lost hooks (customers at home too),
  and deletes the registration. Every process
  looks for dead leases every quarter lease; only the holder of `<redis_channel>:lease-sweeper`
  (`SET NX PX`) sweeps. A starting process sweeps at once, and when no other process holds a
  lease it marks everyone disconnected (as a lone process without Redis does).
- A process whose own lease lapsed (a stalled event loop, Redis restarted) writes its
  registration again at the next heartbeat and marks its people online again.

While the leases run, the rate limits in `SHARED_LIMITS` count in Redis too (one budget over
every process). If Redis fails, connects and events are let through on this process's own
counts (logged): socket.io itself needs Redis to reach other processes, so the deployment is
degraded anyway.
The Lua scripts touch keys they compute, so a standalone Redis (or a single-slot setup) is
required, not Redis Cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy import update

from signaling.directory.principals import Principal
from signaling.store.models import Endpoint, User
from signaling.transport.connections import PrincipalKey
from signaling.transport.services import Services

log = logging.getLogger(__name__)

# Sums one principal's sockets over every process whose lease is alive (and this one).
_COUNT = """
local function count(prefix, me, field, skip)
  local total = 0
  for _, p in ipairs(redis.call('SMEMBERS', prefix .. ':procs')) do
    if p ~= skip and (p == me or redis.call('EXISTS', prefix .. ':proc:' .. p) == 1) then
      total = total + tonumber(redis.call('HGET', prefix .. ':proc-sockets:' .. p, field) or '0')
    end
  end
  return total
end
"""
# ARGV: prefix, me, field, limit. Returns the new total, or -1 (at the limit; nothing added).
REGISTER_SCRIPT = (
    _COUNT
    + """
local prefix, me, field, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
redis.call('SADD', prefix .. ':procs', me)
if count(prefix, me, field, '') >= limit then return -1 end
return redis.call('HINCRBY', prefix .. ':proc-sockets:' .. me, field, 1)
"""
)
# ARGV: prefix, me, field. Returns how many sockets remain on live processes.
UNREGISTER_SCRIPT = (
    _COUNT
    + """
local prefix, me, field = ARGV[1], ARGV[2], ARGV[3]
local key = prefix .. ':proc-sockets:' .. me
if tonumber(redis.call('HINCRBY', key, field, -1)) <= 0 then redis.call('HDEL', key, field) end
return count(prefix, me, field, '')
"""
)
# ARGV: prefix, me, field, skip (a process to leave out: the dead one being swept).
COUNT_SCRIPT = (
    _COUNT
    + """
return count(ARGV[1], ARGV[2], ARGV[3], ARGV[4])
"""
)
# Deletes a lock only if we still hold it.
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

LostHook = Callable[[Services, str, int], Awaitable[None]]
# Rate limits whose counters move to Redis while the leases run (`use_redis(client, prefix)`,
# `use_memory()`), so that one budget holds over every process: login failures
# (signaling/directory/login_guard.py) and the public booking pages
# (signaling/booking/booking_api.py).
SHARED_LIMITS = ("login_guard", "booking_limiter")


def field_of(kind: str, ident: int) -> str:
    return f"{kind}:{ident}"


def parse_field(value: str) -> PrincipalKey | None:
    kind, _, ident = value.partition(":")
    # "guest": the customer at home (no presence of his own; the lost hooks tell his call and
    # the experts waiting for him).
    if kind not in ("user", "endpoint", "guest") or not ident.isdigit():
        return None
    return (kind, int(ident))


def new_process_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


class ProcessLeases:
    """This process's lease, registration and sweeper (see the module docstring)."""

    def __init__(self, services: Services, process_id: str | None = None) -> None:
        self.services = services
        settings = services.settings
        self.prefix = settings.redis_channel
        self.process_id = process_id or new_process_id()
        self.lease_seconds = settings.process_lease_seconds
        self.lease_ms = max(1, int(self.lease_seconds * 1000))
        self.rate_events = settings.rate_limit_principal_events
        self.rate_window_ms = max(1, int(settings.rate_limit_window * 1000))
        self.redis: Any = None
        self.tasks: list[asyncio.Task[None]] = []
        # Set when a Redis update of the registration failed: the next heartbeat rewrites it.
        self.dirty = False
        # Run by the sweeper for each person/kiosk it marks offline (e.g. call participants).
        self.lost_hooks: list[LostHook] = []
        self.sweeps = 0
        self.swept_processes = 0
        self._warned_at = 0.0

    def on_lost(self, hook: LostHook) -> None:
        """`await hook(services, kind, ident)` after the sweeper marked a person ("user") or
        kiosk ("endpoint") offline because his last socket was on a dead process."""
        self.lost_hooks.append(hook)

    # --- keys -------------------------------------------------------------------------------

    def lease_key(self, process_id: str) -> str:
        return f"{self.prefix}:proc:{process_id}"

    def sockets_key(self, process_id: str) -> str:
        return f"{self.prefix}:proc-sockets:{process_id}"

    @property
    def procs_key(self) -> str:
        return f"{self.prefix}:procs"

    @property
    def lock_key(self) -> str:
        return f"{self.prefix}:lease-sweeper"

    def rate_key(self, kind: str, ident: int, window: int) -> str:
        return f"{self.prefix}:rate:{kind}:{ident}:{window}"

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        import redis.asyncio as aioredis

        self.redis = aioredis.Redis.from_url(
            self.services.settings.redis_url,
            socket_connect_timeout=2,
            socket_timeout=2,
            decode_responses=True,
        )
        self._register = self.redis.register_script(REGISTER_SCRIPT)
        self._unregister = self.redis.register_script(UNREGISTER_SCRIPT)
        self._count = self.redis.register_script(COUNT_SCRIPT)
        self._release = self.redis.register_script(RELEASE_SCRIPT)
        for name in SHARED_LIMITS:
            limits = self.services.extras.get(name)
            if limits is not None and hasattr(limits, "use_redis"):
                limits.use_redis(self.redis, self.prefix)
        await self._heartbeat()
        await self.sweep(starting=True)
        self.tasks = [
            asyncio.create_task(self._every(self.lease_seconds / 3, self._heartbeat, "heartbeat")),
            asyncio.create_task(self._every(self.lease_seconds / 4, self.sweep, "lease sweep")),
        ]
        log.info("process lease %s (%g s) in Redis", self.process_id, self.lease_seconds)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks = []
        if self.redis is None:
            return
        for name in SHARED_LIMITS:
            limits = self.services.extras.get(name)
            if limits is not None and hasattr(limits, "use_memory"):
                limits.use_memory()
        try:
            # A clean stop is swept at once (its sockets are gone) rather than at lease expiry.
            await self.redis.delete(self.lease_key(self.process_id))
            await self._sweep_process(self.process_id)
        except Exception:
            log.exception("releasing the process lease failed; it expires by itself")
        with contextlib.suppress(Exception):
            await self.redis.aclose()
        self.redis = None

    async def _every(self, interval: float, job: Any, what: str) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._warn(f"{what} failed: {exc!r}")

    def _warn(self, message: str) -> None:
        # At most one line per lease period: a Redis outage would otherwise flood the log.
        now = time.monotonic()
        if now - self._warned_at >= self.lease_seconds:
            self._warned_at = now
            log.warning("process lease: %s", message)

    async def _heartbeat(self) -> None:
        previous = await self.redis.set(
            self.lease_key(self.process_id), str(time.time()), px=self.lease_ms, get=True
        )
        await self.redis.sadd(self.procs_key, self.process_id)
        if previous is None or self.dirty:
            await self._rewrite_registration(lapsed=previous is None)

    async def _rewrite_registration(self, *, lapsed: bool) -> None:
        connections = self.services.connections
        counts = {field_of(k, i): len(sids) for (k, i), sids in connections.by_principal.items()}
        key = self.sockets_key(self.process_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if counts:
                pipe.hset(key, mapping=counts)
            pipe.sadd(self.procs_key, self.process_id)
            await pipe.execute()
        self.dirty = False
        if lapsed and counts:
            # Our lease lapsed: a sweeper may have marked these people offline meanwhile.
            log.warning("process lease %s had lapsed; registering again", self.process_id)
            from signaling.flow.presence import set_online

            for sids in list(connections.by_principal.values()):
                principal = next(
                    (p for sid in sids if (p := connections.principal(sid)) is not None), None
                )
                if principal is not None:
                    await set_online(self.services, principal, True)

    # --- sockets ----------------------------------------------------------------------------

    async def register(self, principal: Principal, limit: int) -> bool:
        """Count a new socket of `principal`; False (nothing counted) when he already has
        `limit` sockets on the live processes."""
        try:
            total = await self._register(
                args=[self.prefix, self.process_id, field_of(principal.kind, principal.id), limit]
            )
        except Exception as exc:
            self.dirty = True
            self._warn(f"registering a socket failed ({exc!r}); counting this process only")
            return True
        return int(total) >= 0

    async def unregister(self, principal: Principal) -> int | None:
        """Forget one socket of `principal`; how many remain on live processes (None when
        Redis did not answer)."""
        try:
            remaining = await self._unregister(
                args=[self.prefix, self.process_id, field_of(principal.kind, principal.id)]
            )
        except Exception as exc:
            self.dirty = True
            self._warn(f"unregistering a socket failed ({exc!r})")
            return None
        return int(remaining)

    async def count(self, kind: str, ident: int, *, skip: str = "") -> int:
        """Sockets of a person ("user") or kiosk ("endpoint") on live processes."""
        return int(
            await self._count(args=[self.prefix, self.process_id, field_of(kind, ident), skip])
        )

    async def held_anywhere(self, principal: Principal) -> bool:
        """Whether any live process (this one included) has a socket of `principal`.
        Without an answer from Redis, only this process's sockets count."""
        if self.services.connections.is_online(principal):
            return True
        try:
            return await self.count(principal.kind, principal.id) > 0
        except Exception as exc:
            self._warn(f"counting sockets failed ({exc!r}); counting this process only")
            return False

    async def allow_event(self, principal: Principal) -> bool:
        """One more event of `principal` in this fixed window, over all his sockets."""
        window = int(time.time() * 1000) // self.rate_window_ms
        key = self.rate_key(principal.kind, principal.id, window)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.pexpire(key, 2 * self.rate_window_ms)
                used, _ = await pipe.execute()
        except Exception as exc:
            self._warn(f"the shared rate limit failed ({exc!r}); per-socket limit only")
            return True
        return int(used) <= self.rate_events

    # --- sweeping ---------------------------------------------------------------------------

    async def dead_processes(self) -> tuple[list[str], int]:
        """Registered processes whose lease is gone, and how many others are alive."""
        members = sorted(await self.redis.smembers(self.procs_key))
        others = [p for p in members if p != self.process_id]
        if not others:
            return [], 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for member in others:
                pipe.exists(self.lease_key(member))
            alive = await pipe.execute()
        dead = [p for p, exists in zip(others, alive, strict=True) if not exists]
        return dead, len(others) - len(dead)

    async def sweep(self, *, starting: bool = False) -> list[str]:
        """Sweep the processes whose lease expired (one sweeper at a time). Returns them."""
        dead, alive = await self.dead_processes()
        if not dead and not (starting and alive == 0):
            return []
        lock_ms = max(10_000, 4 * self.lease_ms)
        token = f"{self.process_id}:{secrets.token_hex(4)}"
        if not await self.redis.set(self.lock_key, token, nx=True, px=lock_ms):
            return []  # another process is sweeping
        try:
            swept = []
            for process_id in dead:
                await self._sweep_process(process_id)
                swept.append(process_id)
            if starting and alive == 0:
                # No other process holds a lease, so nobody holds a socket anywhere.
                await mark_everyone_disconnected(self.services)
            self.sweeps += 1
            self.swept_processes += len(swept)
            return swept
        finally:
            await self._release(keys=[self.lock_key], args=[token])

    async def _sweep_process(self, process_id: str) -> None:
        registered = await self.redis.hgetall(self.sockets_key(process_id))
        gone = 0
        for value, sockets in registered.items():
            parsed = parse_field(value)
            if parsed is None or int(sockets) <= 0:
                continue
            kind, ident = parsed
            # (Stopping, this process sweeps itself: its own sockets are going away.)
            if process_id != self.process_id and self.services.connections.sids_of(kind, ident):
                continue
            if await self.count(kind, ident, skip=process_id) > 0:
                continue
            await mark_offline(self.services, kind, ident)
            gone += 1
            for hook in list(self.lost_hooks):
                try:
                    await hook(self.services, kind, ident)
                except Exception:
                    log.exception("lost hook %r failed for %s %s", hook, kind, ident)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.sockets_key(process_id))
            pipe.srem(self.procs_key, process_id)
            await pipe.execute()
        if process_id != self.process_id:
            log.warning(
                "process %s lost its lease: %d people/kiosks marked offline", process_id, gone
            )


async def mark_offline(services: Services, kind: str, ident: int) -> None:
    """Presence of a person or kiosk whose last socket was on a dead process."""
    from signaling.flow.presence import set_online

    office_id = None
    if kind == "endpoint":
        async with services.sessions() as session:
            endpoint = await session.get(Endpoint, ident)
            if endpoint is None:
                return
            office_id = endpoint.office_id
    # Only kind, id and office_id matter to presence here.
    from signaling.directory.principals import Role

    role = Role.ENDPOINT if kind == "endpoint" else Role.EXPERT
    principal = Principal(kind=kind, id=ident, role=role, name="", office_id=office_id)
    await set_online(services, principal, False)


async def mark_everyone_disconnected(services: Services) -> None:
    async with services.sessions() as session:
        await session.execute(update(User).where(User.online.is_(True)).values(online=False))
        await session.execute(
            update(Endpoint).where(Endpoint.presence != "offline").values(presence="offline")
        )
        await session.commit()


def leases_of(services: Services) -> ProcessLeases | None:
    """This process's leases, or None without Redis (one process: local counts suffice)."""
    leases = services.extras.get("leases")
    return leases if isinstance(leases, ProcessLeases) else None


def install(app: web.Application, services: Services) -> ProcessLeases:
    """Create the leases (create_app does this when redis_url is set); started after the
    database is migrated, stopped before it is closed."""
    leases = ProcessLeases(services)
    services.extras["leases"] = leases

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        await leases.start()
        try:
            yield
        finally:
            await leases.stop()

    app.cleanup_ctx.append(lifecycle)
    return leases
