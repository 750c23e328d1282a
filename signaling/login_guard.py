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
answer's timing does not tell whether an account exists. The state lives in this process: with
several signaling processes each counts its own share (a shared counter in Redis is the
signaling-cluster work).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass


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


__all__ = ["Blocked", "Busy", "FailureCounter", "Limits", "LoginGuard", "LoginRefused"]
