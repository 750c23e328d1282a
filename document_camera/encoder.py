"""A VP8 encoder for detail: the bitrate cap and frame-rate policy of `rate_control`.

aiortc's RTCRtpSender creates its encoder lazily from the negotiated codec and calls its
`encode(frame, force_keyframe)` in an executor, setting `target_bitrate` whenever a REMB
arrives. `DetailVp8Encoder` keeps aiortc's VP8 RTP packetisation (RFC 7741) by subclassing
`Vp8Encoder`, but configures libvpx itself: the target comes from the `RateController` (capped
at the policy's maximum instead of aiortc's fixed 1.5 Mbit/s), the time base follows the
track's real frame times so libvpx budgets bits per *actual* frame at 5–10 fps, and libvpx may
neither drop nor downscale frames. The track's canvas turns between portrait and landscape (the
page, the zoom region), and each turn needs a key frame anyway: one libvpx encoder per shape
is kept open, so a turn does not pay for opening one.

aiortc has no public hook to supply an encoder, so `install_encoder` sets the sender's private
encoder slot after negotiation (before the first frame): tests assert that the installed
encoder is really the one encoding, so an aiortc upgrade that moves the slot fails loudly.
"""

from __future__ import annotations

import fractions
import logging
import os

import av
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.sdp import SessionDescription
from av.frame import Frame
from av.video.frame import VideoFrame

from document_camera.rate_control import RateController

logger = logging.getLogger(__name__)

VIDEO_CLOCK_RATE = 90_000
TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
REOPEN_CHANGE = 0.15  # reopen libvpx only when the target moved by more than this share


def encoder_threads(width: int, height: int, cpus: int | None = None) -> int:
    """libvpx threads for a `width`×`height` picture on `cpus` cores (those this process may
    use): libwebrtc's rule for desktop VP8 (LibvpxVp8Encoder::NumberOfThreads), where a picture
    above 1280×960 gets 2 threads from 3 cores on, 3 from 6, 8 for 1080p above 8 cores.

    VP8's threads encode macroblock rows in step and spin while they wait for the row above;
    on a 2-core machine that also runs the pipeline, the browser and other tracks, a waiting
    thread burns the core the one it waits for needs. A zoom region's key frame (1536×1088,
    4 regions × 4, alternated) took a median of 283 ms wall and 282 ms CPU with 2 threads
    against 39 and 39 ms with 1 at load 2.4; 534 / 170 ms against 156 / 41 ms at load 15.
    """
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else os.cpu_count() or 1
    pixels = width * height
    if pixels >= 1920 * 1080 and cpus > 8:
        return 8
    if pixels > 1280 * 960 and cpus >= 6:
        return 3
    if pixels > 640 * 480 and cpus >= 3:
        return 3 if cpus >= 6 else 2
    return 1


class DetailVp8Encoder(Vp8Encoder):
    def __init__(self, controller: RateController, *, cpu_used: int = -8) -> None:
        super().__init__()
        self.controller = controller
        self.cpu_used = cpu_used
        self._context: av.VideoCodecContext | None = None  # the one encoding now
        # one per canvas shape (the track's canvas turns with the page and the zoom region),
        # all at _context_bitrate
        self._contexts: dict[tuple[int, int], av.VideoCodecContext] = {}
        self._context_bitrate = 0
        # Each encoder's own clock (the last time stamp it was given) and the last frame's
        # time: an encoder taken up again goes on as if its previous frame were the last one.
        self._clocks: dict[tuple[int, int], int] = {}
        self._last_pts: int | None = None
        self.frames_encoded = 0
        self.bytes_encoded = 0
        self.keyframes = 0

    # aiortc's sender writes REMB estimates here.
    @property
    def target_bitrate(self) -> int:
        return self.controller.target_bitrate

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        self.controller.on_estimate(bitrate)

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        assert isinstance(frame, VideoFrame)
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        target = self.controller.target_bitrate
        if self._contexts and \
                abs(target - self._context_bitrate) > REOPEN_CHANGE * self._context_bitrate:
            self._contexts.clear()
            self._clocks.clear()
        size = (frame.width, frame.height)
        context = self._contexts.get(size)
        if context is None:
            context = self._open(*size, target)
        if context is not self._context:
            # A new encoder, or back to the other canvas shape: the receiver's decoder holds a
            # picture of another size (or none), so this one must be a key frame.
            self._context = context
            force_keyframe = True
        pts_90k = int(frame.pts * frame.time_base * VIDEO_CLOCK_RATE) \
            if frame.pts is not None and frame.time_base is not None else 0
        # libvpx budgets a frame by the time since its previous one: an encoder idle while the
        # canvas had the other shape would take the whole pause as this frame's share and
        # spend it (a key frame of 590 KB instead of 210 KB).
        clock = self._clocks.get(size)
        if clock is not None and self._last_pts is not None:
            frame.pts = clock + max(1, pts_90k - self._last_pts)
        else:
            frame.pts = pts_90k
        self._clocks[size] = frame.pts
        self._last_pts = pts_90k
        frame.time_base = TIME_BASE
        frame.pict_type = av.video.frame.PictureType.I if force_keyframe \
            else av.video.frame.PictureType.NONE
        data = b"".join(bytes(packet) for packet in context.encode(frame))
        if not data:
            return [], pts_90k
        self.frames_encoded += 1
        self.bytes_encoded += len(data)
        if force_keyframe:
            self.keyframes += 1
        payloads = self._packetize(data, self.picture_id)
        self.picture_id = (self.picture_id + 1) % (1 << 15)
        if len(self._contexts) == 1 and size[0] != size[1] and not force_keyframe \
                and self.frames_encoded >= 2:
            # The canvas turns on the first zoom into a region of the other shape: opening
            # libvpx for it then would cost that frame ~27 ms of CPU (and ~42 MB held). An
            # ordinary frame of a still page pays it instead.
            self._open(size[1], size[0], self._context_bitrate)
        return payloads, pts_90k

    def _open(self, width: int, height: int, bitrate: int) -> av.VideoCodecContext:
        context = av.CodecContext.create("libvpx", "w")
        assert isinstance(context, av.VideoCodecContext)
        context.width = width
        context.height = height
        context.pix_fmt = "yuv420p"
        context.time_base = TIME_BASE
        context.framerate = fractions.Fraction(self.controller.policy.max_fps).limit_denominator(
            1000)
        context.bit_rate = bitrate
        context.gop_size = 100_000  # key frames only when the relay asks (PLI/FIR)
        context.qmin = 2
        context.qmax = 52
        context.options = {
            "bufsize": str(bitrate),  # one second of buffer
            "maxrate": str(bitrate),
            "cpu-used": str(self.cpu_used),
            "deadline": "realtime",
            "lag-in-frames": "0",
            # Never skip a frame (the rate policy already spaces them). libvpx's internal
            # down-scaling (rc_resize_allowed) is off by default and FFmpeg leaves it off:
            # the resolution is the point of this track.
            "drop-threshold": "0",
            "static-thresh": "0",  # let a still page keep refining to full quality
            "noise-sensitivity": "0",
            "undershoot-pct": "95",
            "overshoot-pct": "25",
            "max-intra-rate": "0",  # a key frame of a page may be large; it is rare
        }
        context.thread_count = encoder_threads(width, height)
        context.open()
        self._contexts[(width, height)] = context
        self._context_bitrate = bitrate
        return context


def negotiated_codec(sdp: str, mid: str | None) -> str | None:
    """The mime type (lower case) the answer chose for the m-section `mid`."""
    description = SessionDescription.parse(sdp)
    for media in description.media:
        if media.kind == "video" and (mid is None or media.rtp.muxId == mid):
            codecs = media.rtp.codecs
            return codecs[0].mimeType.lower() if codecs else None
    return None


def install_encoder(sender: RTCRtpSender, encoder: DetailVp8Encoder) -> None:
    """Make `sender` encode with `encoder` (call after the answer, before media flows)."""
    slot = "_RTCRtpSender__encoder"
    if not hasattr(sender, slot):
        raise RuntimeError("aiortc's RTCRtpSender has no encoder slot: aiortc changed")
    setattr(sender, slot, encoder)
