"""A hardened coturn configuration for an Etäpalvelu deployment.

`CoturnOptions` holds what differs between deployments and validates it; `render()` writes
turnserver.conf with every choice commented, so an operator reading the file later knows
why each line is there. `etapalvelu turn config` is the command-line front end.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from turn_config.credentials import check_secret
from turn_config.errors import TurnConfigError
from turn_config.peer_ranges import DENIED_PEER_RANGES, parse_peer_range

# Mozilla "intermediate" TLS 1.2 suites: forward secrecy and AEAD only. TLS 1.3 suites are
# not affected by cipher-list and stay on.
CIPHER_LIST = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)
_REALM_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_LOG_TARGET = re.compile(r"syslog|stdout|-|/[^\s#]*")


@dataclass
class CoturnOptions:
    realm: str
    secrets: list[str]
    cert: Path
    pkey: Path
    listening_ips: list[str] = field(default_factory=list)
    relay_ips: list[str] = field(default_factory=list)
    external_ips: list[str] = field(default_factory=list)
    # Addresses of the media relay (SFU) nodes: the only private addresses coturn may reach.
    media_relay_peers: list[str] = field(default_factory=list)
    only_media_relay_peers: bool = False
    port: int = 3478
    tls_port: int = 443
    min_port: int = 49152
    max_port: int = 65535
    user_quota: int = 12
    total_quota: int = 1200
    max_bps: int = 0
    stale_nonce: int = 600
    log_file: str = "syslog"

    def validate(self) -> None:
        """Raise TurnConfigError naming the first unusable value."""
        self.realm = _check_realm(self.realm)
        if not self.secrets:
            raise TurnConfigError("at least one shared secret is needed (use-auth-secret)")
        for secret in self.secrets:
            check_secret(secret)
        if len(set(self.secrets)) != len(self.secrets):
            raise TurnConfigError("the same secret is listed twice")
        for what, path in (("certificate", self.cert), ("private key", self.pkey)):
            _check_pem(what, Path(path))
        for name in ("port", "tls_port", "min_port", "max_port"):
            _check_port(name.replace("_", "-"), getattr(self, name))
        if self.port == self.tls_port:
            raise TurnConfigError(f"port and tls-port are both {self.port}")
        if self.min_port > self.max_port:
            raise TurnConfigError(
                f"relay port range {self.min_port}-{self.max_port} runs backwards"
            )
        for listen in (self.port, self.tls_port):
            if self.min_port <= listen <= self.max_port:
                raise TurnConfigError(
                    f"listening port {listen} lies inside the relay port range "
                    f"{self.min_port}-{self.max_port}"
                )
        for ip in [*self.listening_ips, *self.relay_ips]:
            _check_ip(ip)
        for mapping in self.external_ips:
            public, _, private = mapping.partition("/")
            _check_ip(public)
            if private:
                _check_ip(private)
        for peer in self.media_relay_peers:
            try:
                parse_peer_range(peer)
            except ValueError as exc:
                raise TurnConfigError(
                    f"media relay peer {peer!r} is not an address, CIDR block or range: {exc}"
                ) from None
        if self.only_media_relay_peers and not self.media_relay_peers:
            raise TurnConfigError("only-media-relay-peers needs at least one media relay address")
        for name, minimum in (("user_quota", 1), ("total_quota", 1), ("max_bps", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise TurnConfigError(f"{name.replace('_', '-')} must be an integer ≥ {minimum}")
        if self.user_quota > self.total_quota:
            raise TurnConfigError("user-quota must not exceed total-quota")
        if not 60 <= self.stale_nonce <= 3600:
            raise TurnConfigError("stale-nonce must be 60–3600 seconds")
        if not _LOG_TARGET.fullmatch(self.log_file):
            raise TurnConfigError(
                f"log-file {self.log_file!r} must be syslog, stdout or an absolute path"
            )


def _check_realm(realm: str) -> str:
    name = realm.strip().lower().rstrip(".")
    if not name or len(name) > 253 or not all(_REALM_LABEL.fullmatch(x) for x in name.split(".")):
        raise TurnConfigError(f"realm {realm!r} must be a DNS-style name such as turn.example.fi")
    return name


def _check_pem(what: str, path: Path) -> None:
    try:
        head = path.read_bytes()[: 64 * 1024]
    except FileNotFoundError:
        raise TurnConfigError(f"{what} file {path} does not exist") from None
    except OSError as exc:
        raise TurnConfigError(f"cannot read {what} file {path}: {exc.strerror}") from None
    if b"-----BEGIN " not in head:
        raise TurnConfigError(f"{what} file {path} is not PEM (no '-----BEGIN' line)")
    if not path.is_absolute():
        raise TurnConfigError(f"{what} file {path} must be given as an absolute path")


def _check_port(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise TurnConfigError(f"{name} {value!r} is not a port number (1–65535)")


def _check_ip(text: str) -> None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise TurnConfigError(f"{text!r} is not an IP address") from None
    if address.is_unspecified or address.is_multicast:
        raise TurnConfigError(f"{text!r} cannot be a listening, relay or external address")


def own_addresses(options: CoturnOptions) -> tuple[list[str], list[str]]:
    """This server's own addresses (listening, relay, external public and private), in the
    order given and without repeats, as (to deny, explicitly allowed): an address that is
    itself a `--media-relay-ip` (the media relay on the TURN host) is allowed, not denied."""
    found: list[str] = []
    for text in [
        *options.listening_ips,
        *options.relay_ips,
        *(part for mapping in options.external_ips for part in mapping.split("/") if part),
    ]:
        address = str(ipaddress.ip_address(text))
        if address not in found:
            found.append(address)
    single: set[str] = set()
    for peer in options.media_relay_peers:
        first, last = parse_peer_range(peer)
        if first == last:
            single.add(first)
    return [a for a in found if a not in single], [a for a in found if a in single]


def _without(first: str, last: str, addresses: list[str]) -> list[tuple[str, str]]:
    """The range first-last cut into the pieces that contain none of `addresses`."""
    low, high = ipaddress.ip_address(first), ipaddress.ip_address(last)
    make = type(low)
    holes = sorted(
        {
            int(a)
            for a in map(ipaddress.ip_address, addresses)
            if a.version == low.version and int(low) <= int(a) <= int(high)
        }
    )
    pieces: list[tuple[int, int]] = []
    start = int(low)
    for hole in holes:
        if start < hole:
            pieces.append((start, hole - 1))
        start = hole + 1
    if start <= int(high):
        pieces.append((start, int(high)))
    return [(str(make(a)), str(make(b))) for a, b in pieces]


def render(options: CoturnOptions, command: str = "") -> str:
    """turnserver.conf text for `options` (validated first)."""
    options.validate()
    out: list[str] = []

    def section(title: str) -> None:
        out.extend(["", f"# --- {title} " + "-" * max(0, 72 - len(title))])

    def line(setting: str, why: str) -> None:
        out.append(f"# {why}")
        out.append(setting)

    out.append("# coturn configuration for Etäpalvelu, written by `etapalvelu turn config`.")
    if command:
        out.append(f"# Regenerate with: {command}")
    out.append("# Holds the shared TURN secrets: keep it readable by the turnserver user only.")

    section("Listening")
    for ip in options.listening_ips:
        line(f"listening-ip={ip}", "Listen only on this address.")
    if not options.listening_ips:
        out.append("# No listening-ip: coturn listens on every interface.")
    line(
        f"listening-port={options.port}",
        "Plain TURN over UDP and TCP (RFC 8656); open UDP and TCP on this port.",
    )
    line(
        f"tls-listening-port={options.tls_port}",
        "TURN over TLS. 443 passes firewalls and proxies that allow only HTTPS, as in\n"
        "# closed government networks; binding it needs CAP_NET_BIND_SERVICE.",
    )
    line(f"cert={options.cert}", "Server certificate (PEM, full chain) for TURN over TLS.")
    line(f"pkey={options.pkey}", "Its private key (PEM).")
    line(f'cipher-list="{CIPHER_LIST}"', "TLS 1.2 suites with forward secrecy and AEAD only.")
    line("no-tlsv1", "TLS 1.0 is broken (RFC 8996).")
    line("no-tlsv1_1", "TLS 1.1 is deprecated (RFC 8996).")
    line("no-dtls", "Browsers never speak DTLS to a TURN server; one listener less.")

    section("Relay")
    for ip in options.relay_ips:
        line(f"relay-ip={ip}", "Relay (allocate) addresses on this interface.")
    for mapping in options.external_ips:
        line(f"external-ip={mapping}", "Public address (behind 1:1 NAT) announced in allocations.")
    line(
        f"min-port={options.min_port}\nmax-port={options.max_port}",
        "UDP port range for relayed addresses; open it for UDP in the firewall.",
    )
    line("no-tcp-relay", "WebRTC asks only for UDP relays (RFC 6062 TCP relays are unused).")
    line(
        "no-multicast-peers",
        "Never relay to multicast or broadcast addresses.",
    )

    section("Authentication: short-lived credentials (TURN REST API)")
    line(
        "use-auth-secret",
        "Credentials are minted by the signaling server: user name '<expiry>:<user>', "
        "password\n# base64(HMAC-SHA1(secret, user name)). coturn refuses expired ones.",
    )
    out.append(
        "# The signaling server signs with the first secret. To rotate: add the new secret at "
        "the top\n# (here and in turn_secrets), restart both, wait one credential TTL, then "
        "remove the old one."
    )
    for secret in options.secrets:
        out.append(f"static-auth-secret={secret}")
    line(f"realm={options.realm}", "Realm of the long-term credential mechanism (RFC 8489 §9.2).")
    line(
        f"stale-nonce={options.stale_nonce}",
        "Nonces expire, so a captured request cannot be replayed later (RFC 8489 §9.2).",
    )
    line("fingerprint", "FINGERPRINT on every message, to tell STUN from media (RFC 8489 §14.7).")

    section("Quotas")
    line(
        f"user-quota={options.user_quota}",
        "Concurrent allocations per credential: a browser makes one per TURN URL and ICE restart.",
    )
    line(f"total-quota={options.total_quota}", "Concurrent allocations on this server in all.")
    if options.max_bps:
        line(f"max-bps={options.max_bps}", "Bandwidth cap per session, bytes per second.")
    else:
        out.append(
            "# No max-bps: documents travel in the call, and a per-session cap would slow them."
        )

    section("Peers the relay may reach")
    out.append(
        "# A TURN server relays wherever a client asks. These denials keep it from becoming a"
        "\n# door into private networks, the host's own services or cloud metadata."
    )
    if options.only_media_relay_peers:
        line(
            "denied-peer-ip=0.0.0.0-255.255.255.255\n"
            "denied-peer-ip=::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "Star topology: participants only ever talk to the media relay, so deny all else.",
        )
    for entry in DENIED_PEER_RANGES:
        if entry.network.version == 6 and entry.network.network_address.is_unspecified:
            # coturn reads a range that starts at :: as "from any address, either family":
            # denied-peer-ip=::-:: would deny every peer, IPv4 too.
            out.append(
                f"# {entry.network}: {entry.reason}. No line: coturn refuses :: and 0.0.0.0 as"
                "\n# peers itself, and takes a range starting at :: for 'every address'."
            )
            continue
        line(f"denied-peer-ip={entry.coturn_range}", f"{entry.network}: {entry.reason}.")
    own, shared = own_addresses(options)
    for address in own:
        line(
            f"denied-peer-ip={address}",
            "This server's own (listening, relay or external) address: not its own services.",
        )
    for address in shared:
        out.append(
            f"# {address} is this server's own address but also a --media-relay-ip: allowed."
        )
    if not options.listening_ips:
        out.append(
            "# No listening-ip: addresses of this host not given with --listening-ip, --relay-ip\n"
            "# or --external-ip are not denied unless a range above covers them."
        )
    for peer in options.media_relay_peers:
        first, last = parse_peer_range(peer)
        pieces = _without(first, last, own)
        why = "Media relay (SFU) address: allowed even inside a denied range."
        if pieces != [(first, last)]:
            # coturn lets an allowed-peer-ip override every denial, the own addresses' too.
            why = f"Media relay (SFU) addresses {peer}, except this server's own."
        if not pieces:
            out.append(f"# Media relay {peer} holds only this server's own addresses: not allowed.")
        for low, high in pieces:
            line(f"allowed-peer-ip={low if low == high else f'{low}-{high}'}", why)

    section("Attack surface")
    line("no-cli", "No telnet management console.")
    line("no-software-attribute", "Do not announce the coturn version.")
    line(
        "no-rfc5780\nno-stun-backward-compatibility\nresponse-origin-only-with-rfc5780",
        "Smaller STUN Binding responses: less use as a reflection amplifier.",
    )
    line(
        "no-auth-pings\nno-dynamic-ip-list\nno-dynamic-realms",
        "No user database is used: everything comes from this file.",
    )

    section("Logging")
    line(f"log-file={options.log_file}", "Where coturn logs (syslog, stdout or a file).")
    line("simple-log", "One log file name, for logrotate.")
    line("new-log-timestamp", "ISO 8601 timestamps.")
    return "\n".join(out).lstrip("\n") + "\n"


def write_config(options: CoturnOptions, path: Path, command: str = "") -> None:
    """Write the configuration readable by its owner only (it holds the secrets)."""
    text = render(options, command)
    path = Path(path)
    try:
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise TurnConfigError(f"cannot write {path}: {exc.strerror}") from None
