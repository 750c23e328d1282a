"""The aiortc 1.16 / aioice 0.13 internals the relay relies on (media_relay/aiortc_hooks.py).

If an upgrade moves any of these, this file fails first, naming what moved.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

import aioice.ice
import aiortc
from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCConfiguration
from aiortc.rtcdtlstransport import RTCDtlsTransport

from media_relay.aiortc_hooks import RelayStunProtocol, SilentTrack, install_host_candidates
from media_relay.codecs import preferred_codecs


def test_pinned_versions() -> None:
    assert version("aiortc") == "1.16.0"
    assert version("aioice") == "0.13.0"


def test_dtls_transport_has_srtp_sessions_and_send_path() -> None:
    source = inspect.getsource(RTCDtlsTransport)
    assert "self._rx_srtp = Session(" in source
    assert "self._tx_srtp = Session(" in source
    assert "allow_repeat_tx = True" in source  # resending a NACKed packet re-protects its seq
    assert callable(RTCDtlsTransport._send_rtp)
    params = inspect.signature(RTCDtlsTransport._send_rtp).parameters
    assert list(params) == ["self", "data"]


def test_aioice_connection_internals() -> None:
    connection = aioice.ice.Connection(ice_controlling=True)
    assert connection._nominated == {}
    assert connection._protocols == []
    params = inspect.signature(connection.get_component_candidates).parameters
    assert list(params)[:2] == ["component", "addresses"]
    assert "self.get_component_candidates(" in inspect.getsource(connection.gather_candidates)
    # media arrives through StunProtocol.datagram_received -> Connection.data_received
    assert issubclass(RelayStunProtocol, aioice.ice.StunProtocol)
    assert "self.receiver.data_received" in inspect.getsource(
        aioice.ice.StunProtocol.datagram_received
    )
    pair_source = inspect.getsource(aioice.ice.CandidatePair)
    assert "def remote_addr" in pair_source and "self.protocol" in pair_source


def test_sender_exposes_ssrc_and_sdp_identity() -> None:
    assert "self._ssrc = random32()" in inspect.getsource(RTCRtpSender.__init__)
    source = inspect.getsource(aiortc.rtcpeerconnection.create_media_description_for_transceiver)
    assert "transceiver.sender._ssrc" in source
    assert "transceiver.sender._stream_id" in source and "transceiver.sender._track_id" in source
    # the answerer's codecs are fixed in setRemoteDescription (aiortc_client narrows them)
    assert "transceiver._codecs = " in inspect.getsource(aiortc.rtcpeerconnection)
    # idle senders still write sender reports: the relay drops them (aiortc_hooks.SrtpLink)
    assert "RtcpSrPacket(" in inspect.getsource(RTCRtpSender._run_rtcp)


def test_codec_table_and_header_extension_ids() -> None:
    video = [(c.mimeType, c.parameters.get("profile-level-id")) for c in preferred_codecs("video")]
    assert video == [("video/VP8", None), ("video/H264", "42e01f")]
    assert [c.mimeType for c in preferred_codecs("audio")] == ["audio/opus"]
    from aiortc.codecs import CODECS, HEADER_EXTENSIONS

    assert {c.mimeType: c.payloadType for c in CODECS["video"] if c.mimeType != "video/rtx"}[
        "video/VP8"
    ] == 97
    assert [e.uri for e in HEADER_EXTENSIONS["audio"]] == [
        "urn:ietf:params:rtp-hdrext:sdes:mid",
        "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    ]


async def test_host_candidates_and_bundle() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    try:
        first = pc.addTransceiver("video", direction="sendonly")
        second = pc.addTransceiver("audio", direction="recvonly")
        assert first.sender.transport is second.sender.transport  # one transport
        first.sender.replaceTrack(SilentTrack("video"))
        install_host_candidates(pc, "127.0.0.1", ["127.0.0.1"], 0, 0)
        await pc.setLocalDescription(await pc.createOffer())
        candidates = [
            line for line in pc.localDescription.sdp.splitlines() if line.startswith("a=candidate")
        ]
        assert candidates and all(" 127.0.0.1 " in line for line in candidates)
        assert len(set(candidates)) == 1
        connection = first.sender.transport.transport._connection
        assert all(isinstance(p, RelayStunProtocol) for p in connection._protocols)
    finally:
        await pc.close()


def test_pylibsrtp_binding_used_for_the_fast_path() -> None:
    import os

    from pylibsrtp import Policy, Session
    from pylibsrtp._binding import ffi, lib

    key = os.urandom(30)
    sender = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    receiver = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND))
    packet = bytes([0x80, 97, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]) + b"payload" * 10
    buffer = ffi.new("char[]", 1600)
    length = ffi.new("int *")
    ffi.buffer(buffer)[: len(packet)] = packet
    length[0] = len(packet)
    assert lib.srtp_protect(sender._srtp[0], buffer, length) == 0
    protected = ffi.buffer(buffer)[: length[0]]
    assert receiver.unprotect(protected) == packet


def test_libsrtp_entry_points_have_the_signature_the_c_fast_path_calls() -> None:
    """media_relay/_fastpath.c calls srtp_protect/srtp_unprotect through raw function pointers
    as int (*)(void *ctx, void *packet, int *length): a libsrtp 3 binding would not match."""
    from pylibsrtp._binding import ffi, lib

    from media_relay import fastpath

    assert version("pylibsrtp") == "1.0.0"
    expected = "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"
    assert ffi.typeof(lib.srtp_protect).cname == expected
    assert ffi.typeof(lib.srtp_unprotect).cname == expected
    assert ffi.typeof(lib.srtp_protect_rtcp).cname == expected  # Link.send_rtcp
    assert fastpath.NATIVE  # scripts/setup builds it; the suite must exercise it


def test_rtx_internals() -> None:
    """RTX (media_relay/rtx.py, participant.apply_answer) relies on these."""
    assert "self._rtx_ssrc = random32()" in inspect.getsource(RTCRtpSender.__init__)
    from aiortc.rtp import unwrap_rtx, wrap_rtx  # the test oracle of test_rtx.py

    assert callable(unwrap_rtx) and callable(wrap_rtx)
    from aiortc.rtcdtlstransport import RtpRouter

    router = RtpRouter()
    assert router.ssrc_table == {}  # rtx.route_rtx_to_receivers registers RTX SSRCs here
    source = inspect.getsource(aiortc.rtcpeerconnection)
    assert "is_rtx(" in source  # codec filtering keeps rtx paired with its apt


def test_sender_restart_internals() -> None:
    """aiortc_hooks.follow_send_codec restarts a sender's RTP loop on a new codec with these."""
    from aiortc import rtcrtpsender

    sender_init = inspect.getsource(RTCRtpSender.__init__)
    for name in ("__rtp_task", "__rtp_exited", "__rtx_payload_type", "__encoder"):
        assert f"self.{name}" in sender_init, name
    run_rtp = RTCRtpSender._run_rtp
    assert list(inspect.signature(run_rtp).parameters) == ["self", "codec"]
    assert {"codec", "sequence_number", "timestamp_origin"} <= set(run_rtp.__code__.co_varnames)
    source = inspect.getsource(run_rtp)
    # both drawn in the loop's first step, before any await
    assert source.index("random_sequence_number()") < source.index("await")
    assert source.index("random32()") < source.index("await")
    assert "self.__encoder = None" in source  # a cancelled loop drops the old codec's encoder
    assert callable(rtcrtpsender.random_sequence_number) and callable(rtcrtpsender.random32)
