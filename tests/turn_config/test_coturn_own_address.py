"""Real coturn refuses to relay to its own addresses (security review, finding 10).

On loopback every address is inside the denied 127.0.0.0/8 range, which would hide the
difference. Here that range line is left out, so that 127.0.0.2 and 127.0.0.3 stand for
ordinary public addresses: 127.0.0.2 is the server's announced external address, 127.0.0.3
some other peer. (127.0.0.1, the listening and relay address, stays allowed by the test-only
`allowed-peer-ip=127.0.0.1`, which coturn ranks above every denial.)
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from aioice import stun, turn

from tests.support.net import LOOPBACK
from tests.turn_config.conftest import NEW_SECRET
from tests.turn_config.coturn_server import TURNSERVER, Coturn, TlsFiles
from turn_config.credentials import mint_credential

EXTERNAL = "127.0.0.2"  # the TURN server's own (external) address
OTHER_PEER = "127.0.0.3"  # any other address on the "internet"


@pytest.fixture
def coturn_with_external_ip(tmp_path: Path, tls_files: TlsFiles) -> Iterator[Coturn]:
    if not Path(TURNSERVER).exists():
        pytest.fail("coturn is missing: run scripts/test, which installs it")
    server = Coturn(
        tmp_path,
        tls_files,
        [NEW_SECRET],
        external_ips=[EXTERNAL],
        omit_lines=("denied-peer-ip=127.0.0.0-127.255.255.255",),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture
async def client(coturn_with_external_ip: Coturn) -> AsyncIterator[turn.TurnClientUdpProtocol]:
    credential = mint_credential(NEW_SECRET, "own-address-probe", 600)
    loop = asyncio.get_running_loop()
    server = (LOOPBACK, coturn_with_external_ip.port)
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: turn.TurnClientUdpProtocol(
            server, username=credential.username, password=credential.password,
            lifetime=600, channel_refresh_time=500,
        ),
        remote_addr=server,
    )  # fmt: skip
    try:
        relayed = await protocol.connect()
        # Allocations announce the external address.
        assert relayed[0] == EXTERNAL
        yield protocol
    finally:
        if protocol.refresh_task is not None:
            protocol.refresh_task.cancel()
        transport.close()


def _peer_socket(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, 0))
    sock.setblocking(False)
    return sock


async def _create_permission(client: turn.TurnClientUdpProtocol, peer: tuple[str, int]) -> None:
    request = stun.Message(
        message_method=stun.Method.CREATE_PERMISSION, message_class=stun.Class.REQUEST
    )
    request.attributes["XOR-PEER-ADDRESS"] = peer
    await client.request_with_retry(request)


def _send_indication(
    client: turn.TurnClientUdpProtocol, server: tuple[str, int], peer: tuple[str, int], data: bytes
) -> None:
    message = stun.Message(message_method=stun.Method.SEND, message_class=stun.Class.INDICATION)
    message.attributes["XOR-PEER-ADDRESS"] = peer
    message.attributes["DATA"] = data
    client.send_stun(message, server)


async def _received(sock: socket.socket, within: float) -> bytes | None:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(within):
            return await loop.sock_recv(sock, 2048)
    except TimeoutError:
        return None


async def test_coturn_refuses_to_relay_to_its_own_address(
    coturn_with_external_ip: Coturn, client: turn.TurnClientUdpProtocol
) -> None:
    conf = coturn_with_external_ip.conf_path.read_text().splitlines()
    assert f"denied-peer-ip={EXTERNAL}" in conf
    server = (LOOPBACK, coturn_with_external_ip.port)
    own, other = _peer_socket(EXTERNAL), _peer_socket(OTHER_PEER)
    try:
        own_peer, other_peer = own.getsockname(), other.getsockname()
        # An ordinary peer: permission granted, and data sent to it arrives.
        await _create_permission(client, other_peer)
        _send_indication(client, server, other_peer, b"to another peer")
        assert await _received(other, 5.0) == b"to another peer"

        # The server's own address: CreatePermission and ChannelBind are refused with 403 …
        with pytest.raises(stun.TransactionFailed) as caught:
            await _create_permission(client, own_peer)
        assert caught.value.response.attributes["ERROR-CODE"][0] == 403
        with pytest.raises(stun.TransactionFailed) as caught:
            await client.channel_bind(0x4000, own_peer)
        assert caught.value.response.attributes["ERROR-CODE"][0] == 403
        # … and a Send indication to it is dropped.
        _send_indication(client, server, own_peer, b"to the server itself")
        assert await _received(own, 1.0) is None
    finally:
        own.close()
        other.close()
