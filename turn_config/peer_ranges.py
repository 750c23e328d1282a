"""Address ranges a TURN server must never relay to (RFC 6890 special-purpose registries).

A TURN server relays to any address a client names, so without these denials anyone holding
a credential could reach the office network, the cloud metadata service or the server's own
loopback services through it (the "TURN as an open proxy" class of attacks). Each entry says
why it is denied; coturn takes ranges as `first-last`, so CIDR blocks are expanded.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class DeniedRange:
    network: IPNetwork
    reason: str

    @property
    def coturn_range(self) -> str:
        return f"{self.network.network_address}-{self.network.broadcast_address}"


def _ranges(*entries: tuple[str, str]) -> tuple[DeniedRange, ...]:
    return tuple(DeniedRange(ipaddress.ip_network(net), why) for net, why in entries)


DENIED_PEER_RANGES: tuple[DeniedRange, ...] = _ranges(
    ("0.0.0.0/8", "'this network' (RFC 791); 0.0.0.0 reaches the server itself"),
    ("10.0.0.0/8", "private network (RFC 1918)"),
    ("100.64.0.0/10", "carrier-grade NAT shared space (RFC 6598)"),
    ("127.0.0.0/8", "loopback (RFC 1122): services on the TURN host itself"),
    ("169.254.0.0/16", "link-local (RFC 3927), incl. cloud metadata 169.254.169.254"),
    ("172.16.0.0/12", "private network (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
    ("192.0.2.0/24", "documentation TEST-NET-1 (RFC 5737)"),
    ("192.88.99.0/24", "6to4 relay anycast, deprecated (RFC 7526)"),
    ("192.168.0.0/16", "private network (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking (RFC 2544)"),
    ("198.51.100.0/24", "documentation TEST-NET-2 (RFC 5737)"),
    ("203.0.113.0/24", "documentation TEST-NET-3 (RFC 5737)"),
    ("224.0.0.0/4", "multicast (RFC 5771)"),
    ("240.0.0.0/4", "reserved (RFC 1112) and limited broadcast 255.255.255.255"),
    ("::/128", "unspecified address (RFC 4291)"),
    ("::1/128", "loopback (RFC 4291)"),
    ("::ffff:0:0/96", "IPv4-mapped (RFC 4291): would bypass the IPv4 denials"),
    ("64:ff9b::/96", "NAT64 well-known prefix (RFC 6052): reaches IPv4 through a translator"),
    ("64:ff9b:1::/48", "local-use NAT64 (RFC 8215)"),
    ("100::/64", "discard-only (RFC 6666)"),
    ("2001::/23", "IETF protocol assignments incl. Teredo and benchmarking (RFC 2928, 5180)"),
    ("2001:db8::/32", "documentation (RFC 3849)"),
    ("2002::/16", "6to4 (RFC 3056): embeds IPv4 addresses, private ones too"),
    ("3fff::/20", "documentation (RFC 9637)"),
    ("fc00::/7", "unique local addresses (RFC 4193)"),
    ("fe80::/10", "link-local (RFC 4291)"),
    ("fec0::/10", "site-local, deprecated (RFC 3879)"),
    ("ff00::/8", "multicast (RFC 4291)"),
)


def parse_peer_range(text: str) -> tuple[str, str]:
    """An address, CIDR block or `first-last` range → (first, last); ValueError if malformed."""
    text = text.strip()
    if "-" in text:
        first_text, _, last_text = text.partition("-")
        first = ipaddress.ip_address(first_text.strip())
        last = ipaddress.ip_address(last_text.strip())
        if first.version != last.version:
            raise ValueError(f"{text!r} mixes IPv4 and IPv6")
        if int(first) > int(last):
            raise ValueError(f"{text!r} runs backwards")
        return str(first), str(last)
    if "/" in text:
        network = ipaddress.ip_network(text, strict=False)
        return str(network.network_address), str(network.broadcast_address)
    address = ipaddress.ip_address(text)
    return str(address), str(address)
