"""Draining a signaling process (SIGTERM) so that a load balancer moves its clients elsewhere.

1. `/readyz` answers 503 `{"status": "draining"}` at once, and new socket.io connections get
   503: HAProxy takes the process out after its failed checks and retries a refused
   connection on another process (`retry-on 503`, `option redispatch`).
2. While sockets are connected, wait until the load balancer has seen two of those 503s (its
   `fall 2`; HAProxy's checks carry `X-Etapalvelu-Check`, as `cluster-config` writes them, so
   that a person or a monitor asking /readyz does not count) or `notice` seconds (another load
   balancer; none when nothing ever asked /readyz), so that reconnecting clients are not sent
   back here.
3. Close every socket's TCP connection without an engine.io CLOSE packet: to socket.io clients
   (browser pages, python-socketio, the endpoint agent) that is a lost transport, after which
   they reconnect by themselves, through the load balancer, to another process. A socket.io
   "server disconnect" would tell them not to reconnect.
4. Wait for the sockets' disconnect handlers and the event handlers in flight (their database
   work) to finish, bounded by `limit` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)

DRAIN_KEY = "drain"
# The header HAProxy's health checks send (`http-check send hdr …` in cluster-config).
CHECK_HEADER = "X-Etapalvelu-Check"


class DrainState:
    def __init__(self) -> None:
        self.draining = False
        self.started_at = 0.0
        self.readyz_refused = 0
        # Has anything ever asked /readyz? Nobody did: no load balancer to wait for.
        self.readyz_asked = False
        self._refused = asyncio.Event()

    def start(self) -> None:
        if not self.draining:
            self.draining = True
            self.started_at = time.monotonic()

    def note_readyz_refused(self) -> None:
        self.readyz_refused += 1
        if self.readyz_refused >= 2:
            self._refused.set()

    async def wait_balancer_noticed(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._refused.wait(), seconds)
        except TimeoutError:
            return False
        return True


def state_of(app: web.Application) -> DrainState:
    from signaling.transport import http

    services = http.services_of(app)
    state = services.extras.get(DRAIN_KEY)
    if state is None:
        state = services.extras[DRAIN_KEY] = DrainState()
    return state


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """While draining: 503 for /readyz and for new socket.io connections (a request without
    `sid` is a new engine.io session); everything else, sockets already open included, goes on."""
    state = state_of(request.app)
    if state.draining:
        path = request.path
        if path == "/readyz":
            state.readyz_asked = True
            if CHECK_HEADER in request.headers:
                state.note_readyz_refused()
            return web.json_response(
                {"status": "draining", "checks": {"process": "draining"}}, status=503
            )
        if path.startswith("/socket.io") and "sid" not in request.query:
            return web.json_response(
                {"ok": False, "error": {"code": "draining", "message": "reconnect elsewhere"}},
                status=503,
                headers={"Retry-After": "1"},
            )
    elif request.path == "/readyz":
        state.readyz_asked = True
    return await handler(request)


async def drain(
    app: web.Application, *, notice: float = 3.0, limit: float = 10.0
) -> dict[str, float | int]:
    """Steps 1-4 of the module docstring; returns what it did, for the log."""
    from socketio.async_server import task_reference_holder

    from signaling.transport import http

    services = http.services_of(app)
    sio = services.sio
    state = state_of(app)
    state.start()
    deadline = time.monotonic() + limit
    sockets = len(sio.eio.sockets)
    noticed = False
    if sockets and state.readyz_asked:
        noticed = await state.wait_balancer_noticed(min(notice, limit / 2))
    # Close the TCP connections under the sockets; see the module docstring (3).
    closed = 0
    for environ in list(getattr(sio, "environ", {}).values()):
        request = environ.get("aiohttp.request")
        transport = getattr(request, "transport", None)
        if transport is not None and not transport.is_closing():
            transport.close()
            closed += 1
    # Another library's state, with nothing to wait on: look every 50 ms.
    while (sio.eio.sockets or task_reference_holder) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    left = len(sio.eio.sockets) + len(task_reference_holder)
    took = time.monotonic() - state.started_at
    log.info(
        "drained: %d sockets closed (of %d), balancer noticed: %s, %d left unfinished, %.2f s",
        closed,
        sockets,
        noticed,
        left,
        took,
    )
    return {"sockets": sockets, "closed": closed, "left": left, "seconds": took}
