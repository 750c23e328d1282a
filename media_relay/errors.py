"""The one exception the control API raises: a code the signaling side can map, and a message."""

from __future__ import annotations


class RelayError(Exception):
    """A control call that cannot be done, e.g. unknown room, bad source, bad SDP answer."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}
