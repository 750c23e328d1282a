"""Protection of `POST /api/login` against guessing and flooding.

A login costs an argon2 hash (tens of milliseconds of CPU, on purpose), whether the username
exists or not. Left alone, a few hundred bad logins queue up in the executor and delay a
correct one by a minute, and guessing is limited by nothing but that cost. `LoginGuard` bounds
both:

- **Hashing capacity (global).** At most `concurrency` logins hash at once and at most
  `queue_limit` wait for a turn; a login beyond that is refused at once (`Busy`, HTTP 503 with
  Retry-After) instead of queueing behind the flood. One address holds at most
  `PER_ADDRESS_IN_FLIGHT` of those places, so a flood from one address cannot take them all.
- **Failure limits.** Failed logins are counted per (address, username) — guessing one
  password —, per address — spraying one password over many usernames —, and per username
  over all addresses — a distributed guess at one account. Past a limit, logins of that kind
  are refused (`Blocked`, HTTP 429) without hashing until the failures age out of the window.
  A successful login is never counted.
- **Bounded memory without amnesty.** Each counter keeps at most `max_keys` keys and forgets the
  one whose newest failure is oldest (least recently failed) — never all of them at once — so a
  flood of fresh keys cannot unblock a pair that is being guessed at right now.

Unknown and known usernames take the same path (the unknown one verifies a dummy hash), so the
answer's timing does not tell whether an account exists.

**Several processes.** With `use_redis(client, prefix)` the failure counters live in Redis
(`RedisFailures`): one sorted set per key (`<prefix>:login:{pair,addr,user}:<sha256>`), the
newest `limit` failure times within the window, timed by the Redis server clock, expiring with
the window; checking and recording are one Lua script run each, so concurrent logins on
several processes see each other's failures at once. Callers use the async `admit` /
`record_failure` (the sync `check` / `failed` are the one-process, in-memory path). If Redis
does not answer, this process's own counters decide (logged). The hashing capacity stays per
process (it protects this process's CPU).

`RedisWindows` is that mechanism on its own — sliding-window counters in Redis, some checked
and some counted into in one atomic step — and the public booking pages' per-address request
limits (signaling/booking/booking_api.py `PublicLimiter`) count with it too.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


class LoginRefused(Exception):
    """A login refused before its password was checked."""


class Blocked(LoginRefused):
    """Too many recent failures for this address, username or pair (HTTP 429)."""


class Busy(LoginRefused):
    """Every hashing place and every waiting place is taken (HTTP 503)."""


class FailureCounter:
    """Failures per key within a sliding window, for at most `max_keys` keys."""

    def __init__(self, limit: int, window: float, max_keys: int, clock: Callable[[], float]):
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        # Only the newest `limit` failure times matter for the decision.
        self.failures: OrderedDict[object, deque[float]] = OrderedDict()

    def count(self, key: object) -> int:
        times = self.failures.get(key)
        if times is None:
            return 0
        horizon = self.clock() - self.window
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self.failures[key]
            return 0
        return len(times)

    def exceeded(self, key: object) -> bool:
        return self.count(key) >= self.limit

    def add(self, key: object) -> None:
        self.count(key)  # drops what aged out
        times = self.failures.get(key)
        if times is None:
            times = self.failures[key] = deque(maxlen=self.limit)
        times.append(self.clock())
        self.failures.move_to_end(key)
        while len(self.failures) > self.max_keys:
            self.failures.popitem(last=False)  # the least recently failed key

    def __len__(self) -> int:
        return len(self.failures)


@dataclass(frozen=True)
class Limits:
    per_pair: int = 10  # failures of one username from one address
    per_address: int = 30  # failures from one address, any usernames
    per_username: int = 50  # failures of one username, any addresses
    window: float = 300.0
    username_window: float = 900.0
    max_keys: int = 100_000


@dataclass(frozen=True)
class Window:
    """At most `limit` events per `seconds` (a sliding window)."""

    limit: int
    seconds: float

    @property
    def ms(self) -> int:
        return max(1, int(self.seconds * 1000))


# KEYS: sorted sets of event times. ARGV[1]: how many of the first keys to check; ARGV[2]: how
# many of the first keys to count this event into when none of the checked ones is at its
# limit; ARGV[3]: a unique member for this event; then limit and window (ms) of each key.
# Returns 0, or the 1-based index of the first checked key at its limit (nothing counted then).
# Timed by the Redis server's clock, so the processes' clocks do not matter.
_WINDOWS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local check, add = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 1, check do
  local limit, window = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  if redis.call('ZCARD', KEYS[i]) >= limit then return i end
end
for i = 1, add do
  local limit, window = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])
  redis.call('ZADD', KEYS[i], now, ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  redis.call('ZREMRANGEBYRANK', KEYS[i], 0, -(limit + 1))
  redis.call('PEXPIRE', KEYS[i], window)
end
return 0
"""

_BLOCKED = {
    1: "too many failed logins; try again in a few minutes",
    2: "too many failed logins from this address; try again later",
    3: "too many failed logins for this account; try again later",
}


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


class RedisFallbackLog:
    """Says, at most once a minute, that counters in Redis failed and this process's own counts
    decide: a Redis outage must not flood the log with one line per request."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._warned_at = -60.0

    def __call__(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned_at >= 60:
            self._warned_at = now
            log.warning("%s in Redis failed (%r); this process's counts decide", self.what, exc)


class RedisWindows:
    """Sliding-window counters in Redis, shared by every process that uses the same `prefix`.

    A counter is a sorted set `<prefix>:<kind>:<sha256 of its parts>` (nothing readable in
    Redis) holding the newest `limit` event times within its window, expiring with it. `hit`
    checks some counters and counts into some in one Lua script run, so two processes cannot
    both let the last allowed event through."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._script = client.register_script(_WINDOWS)

    def key(self, kind: str, *parts: str) -> str:
        return f"{self.prefix}:{kind}:{_digest(*parts)}"

    async def hit(self, counters: Sequence[tuple[str, Window]], *, check: int, add: int) -> int:
        """Check the first `check` counters; when none is at its limit, count one event into
        the first `add`. Returns 0, or the 1-based index of the counter at its limit."""
        if not 0 <= check <= len(counters) or not 0 <= add <= len(counters):
            raise ValueError("check and add count counters that were given")
        member = f"{time.time():.6f}:{secrets.token_hex(6)}"
        args: list[int | str] = [check, add, member]
        for _key, window in counters:
            args += [window.limit, window.ms]
        return int(await self._script(keys=[key for key, _ in counters], args=args))


class RedisFailures:
    """The three failure counters of `LoginGuard` in Redis, shared by every process."""

    def __init__(self, client: Any, prefix: str, limits: Limits) -> None:
        self.windows = RedisWindows(client, prefix)
        self.limits = lim = limits
        self._windows = (
            Window(lim.per_pair, lim.window),
            Window(lim.per_address, lim.window),
            Window(lim.per_username, lim.username_window),
        )

    def keys(self, address: str, username: str) -> list[str]:
        return [
            self.windows.key("login:pair", address, username),
            self.windows.key("login:addr", address),
            self.windows.key("login:user", username),
        ]

    def _counters(self, address: str, username: str) -> list[tuple[str, Window]]:
        return list(zip(self.keys(address, username), self._windows, strict=True))

    async def reached(self, address: str, username: str) -> int:
        return await self.windows.hit(self._counters(address, username), check=3, add=0)

    async def add(self, address: str, username: str) -> None:
        await self.windows.hit(self._counters(address, username), check=0, add=3)


class LoginGuard:
    PER_ADDRESS_IN_FLIGHT = 2

    def __init__(
        self,
        concurrency: int,
        queue_limit: int,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or Limits()
        lim = self.limits
        self.per_pair = FailureCounter(lim.per_pair, lim.window, lim.max_keys, clock)
        self.per_address = FailureCounter(lim.per_address, lim.window, lim.max_keys, clock)
        self.per_username = FailureCounter(
            lim.per_username, lim.username_window, lim.max_keys, clock
        )
        self.concurrency = concurrency
        self.queue_limit = queue_limit
        self._hashing = asyncio.Semaphore(concurrency)
        self._admitted = 0  # hashing or waiting for a place to hash
        self._in_flight: dict[str, int] = {}
        self.shared: RedisFailures | None = None
        self._warn = RedisFallbackLog("login limits")

    def use_redis(self, client: Any, prefix: str) -> None:
        """Count failures in Redis from now on (None-safe: `use_memory` goes back)."""
        self.shared = RedisFailures(client, prefix, self.limits)

    def use_memory(self) -> None:
        self.shared = None

    async def admit(self, address: str, username: str) -> None:
        """Raise Blocked when a failure limit for this login is reached (over every process
        when the counters are in Redis)."""
        if self.shared is not None:
            try:
                reached = await self.shared.reached(address, username)
            except Exception as exc:
                self._warn(exc)
            else:
                if reached:
                    raise Blocked(_BLOCKED[reached])
                return
        self.check(address, username)

    async def record_failure(self, address: str, username: str) -> None:
        """Count a failed login (in Redis when shared; always in this process, which decides
        when Redis does not answer)."""
        self.failed(address, username)
        if self.shared is not None:
            try:
                await self.shared.add(address, username)
            except Exception as exc:
                self._warn(exc)

    def check(self, address: str, username: str) -> None:
        """Raise Blocked when a failure limit for this login is reached."""
        if self.per_pair.exceeded((address, username)):
            raise Blocked("too many failed logins; try again in a few minutes")
        if self.per_address.exceeded(address):
            raise Blocked("too many failed logins from this address; try again later")
        if self.per_username.exceeded(username):
            raise Blocked("too many failed logins for this account; try again later")

    def failed(self, address: str, username: str) -> None:
        self.per_pair.add((address, username))
        self.per_address.add(address)
        self.per_username.add(username)

    @asynccontextmanager
    async def slot(self, address: str) -> AsyncIterator[None]:
        """A place to check one password; raises Busy at once when none can be had soon."""
        if self._admitted >= self.concurrency + self.queue_limit:
            raise Busy("the service is busy checking logins; try again in a moment")
        if self._in_flight.get(address, 0) >= self.PER_ADDRESS_IN_FLIGHT:
            raise Busy("a login from this address is already being checked; try again")
        self._admitted += 1
        self._in_flight[address] = self._in_flight.get(address, 0) + 1
        try:
            async with self._hashing:
                yield
        finally:
            self._admitted -= 1
            left = self._in_flight[address] - 1
            if left:
                self._in_flight[address] = left
            else:
                del self._in_flight[address]


__all__ = [
    "Blocked",
    "Busy",
    "FailureCounter",
    "Limits",
    "LoginGuard",
    "LoginRefused",
    "RedisFailures",
    "RedisWindows",
    "Window",
]
