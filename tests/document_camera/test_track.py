"""The document track without a network: fixed resolution, frame-rate policy, a camera
that disappears mid-stream, and the detail encoder's bitrate handling."""

from __future__ import annotations

import asyncio
import fractions
from typing import Any

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError
from av.video.frame import VideoFrame

from document_camera.encoder import DetailVp8Encoder, encoder_threads
from document_camera.notices import Notice, NoticeCode
from document_camera.rate_control import RateController, RatePolicy
from document_camera.sources import SyntheticSource
from document_camera.track import DocumentTrack

SIZE = (544, 768)  # small for tests; the default is 1088×1536


def test_frame_rate_falls_with_the_estimate_and_the_cap_holds() -> None:
    controller = RateController(RatePolicy(max_bitrate=2_000_000, max_fps=8.0,
                                           bits_per_frame=250_000))
    assert controller.target_bitrate == 2_000_000 and controller.frame_rate == 8.0
    controller.on_estimate(10_000_000)  # a generous receiver does not lift the cap
    assert controller.target_bitrate == 2_000_000
    controller.on_estimate(1_000_000)
    assert controller.frame_rate == pytest.approx(4.0)
    controller.on_estimate(30_000)
    assert controller.target_bitrate == 100_000 and controller.frame_rate == 1.0
    with pytest.raises(ValueError):
        RatePolicy(max_bitrate=10, min_bitrate=100)


def test_remb_reaches_the_controller_through_the_encoder_property() -> None:
    controller = RateController()
    encoder = DetailVp8Encoder(controller)
    encoder.target_bitrate = 800_000  # what aiortc's RTCRtpSender does on REMB
    assert controller.target_bitrate == 800_000 and controller.estimates_received == 1
    # aiortc's own encoder would clamp at 1.5 Mbit/s; ours follows the policy's cap.
    encoder.target_bitrate = 1_900_000
    assert encoder.target_bitrate == 1_900_000


def _frames(n: int, size: tuple[int, int], fps: float) -> list[VideoFrame]:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (size[1] // 8, size[0] // 8, 3)).astype(np.uint8)
    image = np.kron(base, np.ones((8, 8, 1), np.uint8))
    out = []
    for i in range(n):
        frame = VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = int(i * 90_000 / fps)
        frame.time_base = fractions.Fraction(1, 90_000)
        out.append(frame)
    return out


def test_encoder_keeps_resolution_and_obeys_the_cap() -> None:
    controller = RateController(RatePolicy(max_bitrate=1_000_000, max_fps=5.0))
    encoder = DetailVp8Encoder(controller)
    total = 0
    for i, frame in enumerate(_frames(25, (640, 480), 5.0)):
        payloads, timestamp = encoder.encode(frame, force_keyframe=(i == 0))
        assert payloads and timestamp == frame.pts
        total += sum(len(p) for p in payloads)
    assert encoder.frames_encoded == 25
    seconds = 25 / 5.0
    assert total * 8 / seconds < 1.3 * 1_000_000  # CBR with a 1 s buffer: near the target
    # A falling estimate reopens the encoder at the same resolution with a key frame.
    controller.on_estimate(300_000)
    keyframes = encoder.keyframes
    encoder.encode(_frames(1, (640, 480), 5.0)[0])
    assert encoder.keyframes == keyframes + 1
    assert encoder._context is not None and encoder._context.width == 640


def test_encoder_threads_follow_libwebrtcs_rule() -> None:
    # VP8's row threads spin while they wait: one thread below 3 cores, whatever the size.
    assert encoder_threads(1536, 1088, cpus=1) == 1
    assert encoder_threads(1536, 1088, cpus=2) == 1
    assert encoder_threads(1536, 1088, cpus=3) == 2
    assert encoder_threads(1536, 1088, cpus=6) == 3
    assert encoder_threads(1920, 1080, cpus=16) == 8
    assert encoder_threads(640, 480, cpus=16) == 1
    encoder = DetailVp8Encoder(RateController())
    encoder.encode(_frames(1, (640, 480), 5.0)[0])
    assert encoder._context is not None
    assert encoder._context.thread_count == encoder_threads(640, 480)


def test_turning_the_canvas_reuses_an_open_encoder_with_a_key_frame() -> None:
    encoder = DetailVp8Encoder(RateController(RatePolicy(max_fps=5.0)))
    portrait, landscape = _frames(4, (480, 640), 5.0), _frames(3, (640, 480), 5.0)
    opened = []
    real_open = encoder._open

    def counting_open(width: int, height: int, bitrate: int) -> Any:
        opened.append((width, height))
        return real_open(width, height, bitrate)

    encoder._open = counting_open  # type: ignore[method-assign]
    for frame in portrait[:2]:
        encoder.encode(frame)
    # Opened for the page, and the other way round ahead of the first zoom that needs it.
    assert opened == [(480, 640), (640, 480)] and encoder.keyframes == 1
    first = encoder._context
    encoder.encode(landscape[0])
    assert encoder.keyframes == 2 and encoder._context is not first
    encoder.encode(landscape[1])
    assert encoder.keyframes == 2
    encoder.encode(portrait[2])  # back: the same encoder, a key frame for the receiver
    assert encoder._context is first and encoder.keyframes == 3
    assert opened == [(480, 640), (640, 480)]
    encoder.encode(portrait[3])
    assert encoder.keyframes == 3 and encoder.frames_encoded == 6


async def test_track_sends_fixed_size_frames_at_the_policy_rate() -> None:
    source = SyntheticSource(frame_size=(960, 540), seed=2)
    controller = RateController(RatePolicy(max_fps=10.0, bits_per_frame=200_000))
    track = DocumentTrack(source, size=SIZE, controller=controller)
    loop = asyncio.get_running_loop()
    started = loop.time()
    frames = [await track.recv() for _ in range(5)]
    elapsed = loop.time() - started
    assert all((f.width, f.height) == SIZE for f in frames)
    assert elapsed >= 4 / 10.0 - 0.02  # paced at ≤ 10 fps
    pts = [f.pts for f in frames]
    assert pts == sorted(pts) and len(set(pts)) == 5
    assert track.status.page_found and track.status.frames_sent == 5
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_camera_disappearing_mid_stream_keeps_the_track_alive() -> None:
    source = SyntheticSource(frame_size=(960, 540), seed=3, fail_after=2)
    notices: list[Notice] = []
    controller = RateController(RatePolicy(max_fps=20.0, bits_per_frame=100_000))
    track = DocumentTrack(source, size=SIZE, controller=controller, on_notice=notices.append,
                          reopen_interval=0.05)
    good = [await track.recv() for _ in range(2)]
    lost = [await track.recv() for _ in range(3)]  # the cable is pulled
    assert all((f.width, f.height) == SIZE for f in good + lost)
    camera = {NoticeCode.CAMERA_LOST, NoticeCode.CAMERA_BACK}
    # (A 540p camera is too coarse for 10 pt text: it may also say "out of focus".)
    assert [n.code for n in notices if n.code in camera] == [NoticeCode.CAMERA_LOST]
    assert not track.status.camera_ok
    # The "camera lost" frame is visibly different from the page (dimmed, with a message).
    page = good[-1].to_ndarray(format="gray")
    message = lost[-1].to_ndarray(format="gray")
    assert message.mean() < page.mean() - 40
    source.plug_back()
    await asyncio.sleep(0.06)
    await track.recv()
    assert track.status.camera_ok
    assert [n.code for n in notices if n.code in camera] == [
        NoticeCode.CAMERA_LOST, NoticeCode.CAMERA_BACK]
    track.stop()


async def test_no_page_is_told_once_and_frames_keep_coming() -> None:
    class Desk:
        description = "desk"

        def read(self) -> np.ndarray:
            return np.full((540, 960, 3), 70, np.uint8)

        def reopen(self) -> None:
            pass

        def close(self) -> None:
            pass

    notices: list[Notice] = []
    track = DocumentTrack(Desk(), size=SIZE, on_notice=notices.append,
                          controller=RateController(RatePolicy(max_fps=20.0,
                                                               bits_per_frame=100_000)))
    frames = [await track.recv() for _ in range(3)]
    # no page: the (landscape) camera view goes out landscape, one resolution throughout
    assert all((f.width, f.height) == (SIZE[1], SIZE[0]) for f in frames)
    assert [n.code for n in notices] == [NoticeCode.NO_PAGE]
    track.stop()


async def test_landscape_plan_goes_out_landscape_without_bars() -> None:
    source = SyntheticSource(frame_size=(1920, 1080), kind="plan", seed=2)
    track = DocumentTrack(source, size=SIZE, controller=RateController(RatePolicy(max_fps=30)))
    frame = await track.recv()
    assert (frame.width, frame.height) == (SIZE[1], SIZE[0])  # 768×544
    image = frame.to_ndarray(format="bgr24")
    # The plan fills the canvas: no black bars at the sides or top and bottom.
    assert image[:, :8].mean() > 100 and image[:, -8:].mean() > 100
    assert image[:8].mean() > 100 and image[-8:].mean() > 100
    text = DocumentTrack(SyntheticSource(frame_size=(1920, 1080), seed=2), size=SIZE,
                         controller=RateController(RatePolicy(max_fps=30)))
    portrait = await text.recv()
    assert (portrait.width, portrait.height) == SIZE
    track.stop()
    text.stop()
