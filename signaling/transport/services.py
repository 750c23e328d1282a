"""What a request or event handler can reach: settings, database, socket.io server, relay.

Built once by `signaling.server.app.create_app` and handed to every handler through its context,
so handlers never import globals and tests can build their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from signaling.db import utcnow
from signaling.metrics import SignalingMetrics
from signaling.transport.connections import Connections

if TYPE_CHECKING:
    import socketio
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

    from signaling.config import Settings


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    sio: socketio.AsyncServer
    # The media relay's control interface (media_relay.control); None until it is started.
    relay: Any = None
    # Free slots for features that attach their own long-lived state (queues, calls, ...).
    extras: dict[str, Any] = field(default_factory=dict)
    # The live sockets of this process: sid <-> Principal, connect/disconnect hooks.
    connections: Connections = field(default_factory=Connections)
    # Prometheus collectors of this server (registry per app; features may add their own).
    metrics: SignalingMetrics = field(default_factory=SignalingMetrics)
    # "Now" for the rules that depend on the time of day (service hours, office_offer.py);
    # tests set a fixed or stepping clock here instead of waiting for the wall clock.
    clock: Callable[[], datetime] = utcnow
