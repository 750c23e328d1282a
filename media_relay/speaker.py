"""Active speaker from RFC 6464 audio levels.

Like LiveKit: a participant is speaking when at least 40 % of its audio packets in a window
are louder than −40 dBov; the loudest-by-share speaker wins, and the choice moves only when
another speaker is clearly ahead, so it does not flap between two people talking at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

WINDOW_SECONDS = 0.5
SPEAKING_SHARE = 0.4
MIN_SAMPLES = 5
SWITCH_MARGIN = 0.15


class LevelSource(Protocol):
    participant_id: str
    level_samples: int
    loud_samples: int


class ActiveSpeakerDetector:
    def __init__(self) -> None:
        self.current: str | None = None
        self._window_start: float | None = None

    def update(self, sources: Iterable[LevelSource], now: float) -> str | None:
        """Call often; returns a participant id when the active speaker changes."""
        if self._window_start is None:
            self._window_start = now
        if now - self._window_start < WINDOW_SECONDS:
            return None
        self._window_start = now
        shares: dict[str, float] = {}
        for source in sources:
            if source.level_samples >= MIN_SAMPLES:
                shares[source.participant_id] = source.loud_samples / source.level_samples
            source.level_samples = 0
            source.loud_samples = 0
        if not shares:
            return None
        best = max(shares, key=lambda pid: shares[pid])
        if shares[best] < SPEAKING_SHARE or best == self.current:
            return None
        current_share = shares.get(self.current, 0.0) if self.current is not None else 0.0
        if current_share >= SPEAKING_SHARE and shares[best] - current_share < SWITCH_MARGIN:
            return None
        self.current = best
        return best

    def forget(self, participant_id: str) -> None:
        if self.current == participant_id:
            self.current = None
