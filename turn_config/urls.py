"""STUN and TURN URLs (RFC 7064, RFC 7065), parsed strictly so that typos fail loudly.

    turn:HOST[:PORT][?transport=udp|tcp]     default port 3478, default transport udp
    turns:HOST[:PORT][?transport=tcp]        default port 5349, TLS over TCP
    stun:HOST[:PORT] / stuns:HOST[:PORT]

HOST is a DNS name, an IPv4 address or a bracketed IPv6 address (`[2001:db8::1]`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from turn_config.errors import TurnUrlError

DEFAULT_PORTS = {"stun": 3478, "turn": 3478, "stuns": 5349, "turns": 5349}
# RFC 1123 host name labels; a trailing dot (fully qualified) is allowed.
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


@dataclass(frozen=True)
class IceServerUrl:
    """One parsed STUN/TURN URL."""

    scheme: str  # stun, stuns, turn, turns
    host: str  # without brackets
    port: int
    transport: str | None  # udp or tcp for turn/turns; None for stun/stuns

    @property
    def is_turn(self) -> bool:
        return self.scheme in ("turn", "turns")

    @property
    def uses_tls(self) -> bool:
        return self.scheme in ("turns", "stuns")

    @property
    def label(self) -> str:
        """What an operator calls this transport: UDP, TCP or TLS."""
        if self.uses_tls:
            return "TLS"
        return (self.transport or "udp").upper()

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        text = f"{self.scheme}:{host}:{self.port}"
        if self.transport is not None:
            text += f"?transport={self.transport}"
        return text


def parse_ice_url(url: str) -> IceServerUrl:
    """Parse a STUN/TURN URL, raising TurnUrlError with the reason when it is malformed."""
    if not isinstance(url, str) or not url:
        raise TurnUrlError("empty STUN/TURN URL")
    if any(ch.isspace() for ch in url) or not url.isprintable():
        raise TurnUrlError(f"malformed URL {url!r}: it contains spaces or control characters")
    scheme, sep, rest = url.partition(":")
    if not sep or scheme.lower() not in DEFAULT_PORTS:
        raise TurnUrlError(
            f"malformed URL {url!r}: the scheme must be turn:, turns:, stun: or stuns:"
        )
    scheme = scheme.lower()
    if rest.startswith("//"):
        raise TurnUrlError(f"malformed URL {url!r}: write {scheme}:HOST, without '//'")
    where, qmark, query = rest.partition("?")
    host, port = _split_host_port(url, where, DEFAULT_PORTS[scheme])
    transport = _transport(url, scheme, query if qmark else None)
    return IceServerUrl(scheme=scheme, host=host, port=port, transport=transport)


def _split_host_port(url: str, where: str, default_port: int) -> tuple[str, int]:
    if where.startswith("["):
        end = where.find("]")
        if end < 0:
            raise TurnUrlError(f"malformed URL {url!r}: unclosed '[' around an IPv6 address")
        host, tail = where[1:end], where[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise TurnUrlError(f"malformed URL {url!r}: {host!r} is not an IPv6 address") from None
        if tail and not tail.startswith(":"):
            raise TurnUrlError(f"malformed URL {url!r}: unexpected {tail!r} after the address")
        port_text = tail[1:] if tail else None
    else:
        host, colon, port_text_ = where.partition(":")
        port_text = port_text_ if colon else None
        if ":" in port_text_:
            raise TurnUrlError(
                f"malformed URL {url!r}: put an IPv6 address in brackets, e.g. turn:[2001:db8::1]"
            )
        _check_host(url, host)
    if port_text is None:
        return host, default_port
    if not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
        raise TurnUrlError(f"malformed URL {url!r}: port {port_text!r} is not a number")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise TurnUrlError(f"malformed URL {url!r}: port {port} is outside 1–65535")
    return host, port


def _check_host(url: str, host: str) -> None:
    if not host:
        raise TurnUrlError(f"malformed URL {url!r}: the host is missing")
    try:
        ipaddress.IPv4Address(host)
        return
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise TurnUrlError(f"malformed URL {url!r}: {host!r} is not a valid host name")
    if name.replace(".", "").isdigit():
        raise TurnUrlError(f"malformed URL {url!r}: {host!r} is not a valid IPv4 address")


def _transport(url: str, scheme: str, query: str | None) -> str | None:
    if scheme in ("stun", "stuns"):
        if query is not None:
            raise TurnUrlError(f"malformed URL {url!r}: {scheme}: URLs take no query")
        return None
    if query is None:
        return "tcp" if scheme == "turns" else "udp"
    key, eq, value = query.partition("=")
    if key.lower() != "transport" or not eq:
        raise TurnUrlError(f"malformed URL {url!r}: the only query allowed is ?transport=udp|tcp")
    value = value.lower()
    if value not in ("udp", "tcp"):
        raise TurnUrlError(f"malformed URL {url!r}: transport must be udp or tcp, not {value!r}")
    if scheme == "turns" and value != "tcp":
        raise TurnUrlError(f"malformed URL {url!r}: turns: runs over TLS, so transport=tcp")
    return value
