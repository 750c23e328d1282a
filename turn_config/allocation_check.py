"""`etapalvelu turn check`: a real TURN Allocate (RFC 8656 §7) against a deployment.

For each TURN URL it opens the transport (UDP, TCP or TLS), authenticates with the
long-term credential mechanism and asks for a UDP relay, then frees the allocation. The
result says what works and, when something does not, the likely reason in operator terms.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from dataclasses import asdict, dataclass
from typing import Any

from turn_config.urls import IceServerUrl

# STUN error codes an Allocate can meet (RFC 8656 §19, RFC 8489 §14.8), in operator terms.
ERROR_HINTS: dict[int, str] = {
    400: "bad request: the server did not understand the Allocate",
    401: "credentials refused: wrong secret, expired credential or wrong user name format",
    403: "forbidden: the server's policy refuses this client or peer",
    420: "unknown attribute: the server rejects an attribute the client sent",
    437: "allocation mismatch: an allocation already exists for this 5-tuple",
    438: "stale nonce even after a retry: check the server clock and stale-nonce",
    441: "wrong credentials: the user name changed within the allocation",
    442: "unsupported transport: the server does not relay UDP",
    486: "allocation quota reached for this user (user-quota)",
    508: "insufficient capacity: total-quota or the relay port range is exhausted",
}


@dataclass
class CheckResult:
    url: str
    transport: str  # UDP, TCP or TLS
    ok: bool
    outcome: str  # ok, timeout, refused, tls, dns, unauthorized, forbidden, error-NNN, error
    detail: str
    relayed_address: str | None = None
    mapped_address: str | None = None
    elapsed_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        return f"{mark} {self.transport:<3} {self.url}: {self.detail} ({self.elapsed_ms:.0f} ms)"


class _Sink(asyncio.DatagramProtocol):
    """The check relays nothing; it only learns when the allocation is gone."""

    def __init__(self) -> None:
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def check_url(
    url: IceServerUrl,
    username: str,
    password: str,
    answer_within: float = 5.0,
    ca_file: str | None = None,
) -> CheckResult:
    """Allocate on one TURN URL; never raises for network or protocol failures."""
    from aioice import stun, turn

    if not url.is_turn:
        raise ValueError(f"{url} is not a TURN URL")
    started = time.perf_counter()

    def result(ok: bool, outcome: str, detail: str, **extra: Any) -> CheckResult:
        elapsed = (time.perf_counter() - started) * 1000
        return CheckResult(str(url), url.label, ok, outcome, detail, elapsed_ms=elapsed, **extra)

    where = f"{url.host}:{url.port}"
    try:
        transport, sink = await asyncio.wait_for(
            turn.create_turn_endpoint(
                _Sink,
                server_addr=(url.host, url.port),
                username=username,
                password=password,
                ssl=_tls_context(ca_file) if url.uses_tls else None,
                transport=url.transport or "udp",
            ),
            answer_within,
        )
    except TimeoutError:
        if url.transport == "udp":
            why = "UDP is blocked on the way or nothing listens there"
        else:
            why = "the port is filtered by a firewall or the server does not answer"
        detail = f"no answer within {answer_within:g} s from {where}: {why}"
        return result(False, "timeout", detail)
    except stun.TransactionFailed as exc:
        code, reason = exc.response.attributes.get("ERROR-CODE", (0, "no error code"))
        hint = ERROR_HINTS.get(code, "the server refused the Allocate")
        outcome = {401: "unauthorized", 403: "forbidden"}.get(code, f"error-{code}")
        return result(False, outcome, f"{code} {reason}: {hint}")
    except stun.TransactionTimeout:
        return result(False, "timeout", f"{where} stopped answering during the Allocate")
    except ssl.SSLCertVerificationError as exc:
        return result(
            False,
            "tls",
            f"TLS certificate not trusted: {exc.verify_message} (use --ca-file "
            "for a private CA; the name in the URL must match the certificate)",
        )
    except ssl.SSLError as exc:
        return result(False, "tls", f"TLS handshake with {where} failed: {exc.reason or exc}")
    except socket.gaierror as exc:
        return result(False, "dns", f"cannot resolve {url.host!r}: {exc.strerror}")
    except ConnectionRefusedError:
        return result(False, "refused", f"connection refused: nothing listens on TCP {where}")
    except (ConnectionError, OSError) as exc:
        text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return result(False, "error", f"network error talking to {where}: {text}")

    relayed = transport.get_extra_info("sockname")
    mapped = transport.get_extra_info("related_address")
    ok = result(
        True,
        "ok",
        f"allocated relay {_addr(relayed)}, seen from {_addr(mapped)}",
        relayed_address=_addr(relayed),
        mapped_address=_addr(mapped),
    )
    # Free the allocation at once rather than holding a quota slot until it expires.
    transport.close()
    try:
        await asyncio.wait_for(sink.closed, answer_within)
    except TimeoutError:
        pass  # the server frees it when its lifetime ends (RFC 8656 §6)
    return ok


def _addr(address: tuple[str, int] | None) -> str | None:
    if address is None:
        return None
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def check_urls(
    urls: list[IceServerUrl],
    username: str,
    password: str,
    answer_within: float = 5.0,
    ca_file: str | None = None,
) -> list[CheckResult]:
    """Check every URL concurrently (so a blocked transport costs one timeout, not several)."""
    return list(
        await asyncio.gather(
            *(check_url(url, username, password, answer_within, ca_file) for url in urls)
        )
    )


def standard_urls(host: str) -> list[str]:
    """The three URLs a deployment made by `turn config` offers on HOST (IPv6 in brackets)."""
    return [
        f"turn:{host}:3478?transport=udp",
        f"turn:{host}:3478?transport=tcp",
        f"turns:{host}:443?transport=tcp",
    ]
