"""`etapalvelu bench document-camera` and `etapalvelu document-camera …` (still, stitch)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(root: Any, bench: Any) -> None:
    parser = bench.add_parser(
        "document-camera",
        help="document camera: page finding, readability on the track and with remote zoom, "
        "plans, stitching, blur messages, zoom latency",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Measures the document camera on pages it renders itself (document_camera/synthetic.py):
(a) pipeline ms per frame at 1080p and 4K;
(b) with --streaming: a 10 pt A4 page sent as the document track through an in-process relay
    at 2 Mbit/s, OCR character error against an ordinary 30 fps camera track (~40 s);
(c) per condition (flat, tilt, uneven, shadow, curl, motion3/6/12, defocus, noise, clutter,
    hand) and camera resolution: page found, wrong crops (a corner > 5 %% of the diagonal
    off) and *silent* wrong crops (no page notice: a failure), blur notices, CER of 8 pt and
    11 pt text on the track and with remote zoom (the live zoom, zoom.PageZoom), share
    of an A3 plan's 7 pt dimension numbers read on the track and with remote zoom;
(d) stitching of A2 and A1 sheets in the grid TileGuide plans, --runs runs each;
(e) blur-message rate on blurred frames and false alarms on sharp ones, each frame on its own
    and after the same page steady and sharp ("in seq");
(f) zoom latency: agent side (set_region -> the track's first frame showing the region) and,
    as zoom_latency_ms (median; zoom_latency_p90_ms), through the relay to a decoding
    subscriber that takes a frame as complete at its last packet, as a browser does
    (zoom_bench), twice through 4 regions; --zoom-latency-only runs just this (~30 s).
Prints the targets of issue 16 with meets/MISSES. Last line JSON (cer,
plan_dimensions_read, stitch_success, silent_wrong_crops, zoom_latency_ms, page_found_rate,
blur_message_rate, ...). The default run took ~15 min on a loaded 2-core machine;
--quick ~1.5 min.
--guidance instead measures what each camera resolution reads (720p..4K).""",
    )
    parser.add_argument("--quick", action="store_true",
                        help="flat, shadow and motion6 only, 1 shot each, 3 stitch runs")
    parser.add_argument("--conditions",
                        help="comma-separated conditions (default all): flat, tilt, uneven, "
                        "shadow, curl, motion3, motion6, motion12, defocus, noise, clutter, hand")
    parser.add_argument("--resolutions", default=None,
                        help="comma-separated camera resolutions: 720p, 1080p, 1440p, 4k "
                        "(default 1080p,4k)")
    parser.add_argument("--shots", type=int, default=None,
                        help="shots per page kind per condition and resolution for page "
                        "finding and blur (default 3)")
    parser.add_argument("--text-pt", default=None,
                        help="comma-separated text sizes read, in points (default 8,11)")
    parser.add_argument("--no-plans", action="store_true", help="skip the A3 plan")
    parser.add_argument("--runs", type=int, default=None,
                        help="stitching runs per sheet (default 10; 0 skips stitching)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--no-latency", action="store_true", help="skip the zoom latency")
    parser.add_argument("--zoom-latency-only", action="store_true",
                        help="only (f), the zoom latency, --rounds times through the regions "
                        "(default 3; ~30 s)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="with --zoom-latency-only: times through the 4 regions")
    parser.add_argument("--no-reading", action="store_true",
                        help="skip (c)-(f): only processing, or streaming with --streaming")
    parser.add_argument("--guidance", action="store_true",
                        help="camera guidance: smallest legible text and plan dimensions per "
                        "resolution, on the track and with remote zoom (flat page)")
    parser.add_argument("--streaming", action="store_true",
                        help="also (b): the streaming comparison through the relay")
    parser.add_argument("--seconds", type=float, default=12.0,
                        help="streaming time per track (with --streaming)")
    parser.add_argument("--repeats", type=int, default=8, help="frames timed per resolution")
    parser.add_argument("--save-dir", help="write the received frames as PNG here "
                        "(with --streaming)")
    parser.set_defaults(func=_bench)

    tool = root.add_parser(
        "document-camera",
        help="document camera tools: take a rectified still, stitch a large sheet",
    )
    sub = tool.add_subparsers(dest="document_camera_command", metavar="COMMAND")
    tool.set_defaults(func=lambda _args: (tool.print_help(), 2)[1])

    still = sub.add_parser("still", help="one full-resolution rectified still from a source")
    still.add_argument("--source", default="synthetic",
                       help="synthetic | synthetic:plan | file:PATH | v4l2:/dev/videoN")
    still.add_argument("--output", type=Path, required=True, help="PNG or JPEG file to write")
    still.set_defaults(func=_still)

    stitch = sub.add_parser("stitch", help="stitch overlapping tiles of a large sheet")
    stitch.add_argument("tiles", nargs="+", type=Path, help="tile images in row-major order")
    stitch.add_argument("--rows", type=int, help="grid rows (guided capture)")
    stitch.add_argument("--cols", type=int, help="grid columns (guided capture)")
    stitch.add_argument("--overlap", type=float, help="planned overlap share, e.g. 0.3")
    stitch.add_argument("--output", type=Path, required=True)
    stitch.set_defaults(func=_stitch)


def _bench(args: argparse.Namespace) -> int:
    import sys

    from document_camera.bench import main
    from document_camera.bench_reading import CONDITIONS, ReadingOptions

    def listed(value: str | None) -> list[str] | None:
        return None if value is None else [v.strip() for v in value.split(",") if v.strip()]

    if args.zoom_latency_only:
        import json

        from document_camera.bench_reading import zoom_latency_summary

        if args.rounds < 1:
            print("bench document-camera: --rounds must be at least 1", file=sys.stderr)
            return 2
        summary = {"benchmark": "document-camera", **zoom_latency_summary(rounds=args.rounds)}
        print(json.dumps(summary, sort_keys=True))
        return 0
    try:
        if args.guidance:
            from document_camera.guidance_bench import main as guidance

            return guidance(resolutions=listed(args.resolutions), jobs=args.jobs)
        base = ReadingOptions()
        if args.quick:
            base = ReadingOptions(conditions=("flat", "shadow", "motion6"), seeds=1,
                                  stitch_runs=3)
        conditions = listed(args.conditions)
        text_pt = listed(args.text_pt)
        options = ReadingOptions(
            conditions=tuple(conditions) if conditions else base.conditions,
            resolutions=tuple(r.lower() for r in (listed(args.resolutions) or []))
            or base.resolutions,
            seeds=args.shots if args.shots is not None else base.seeds,
            text_sizes=tuple(float(p) for p in text_pt) if text_pt is not None
            else base.text_sizes,
            plans=not args.no_plans,
            stitch_runs=args.runs if args.runs is not None else base.stitch_runs,
            jobs=args.jobs,
            latency=not args.no_latency,
        )
        if options.seeds < 1 or options.stitch_runs < 0 or options.jobs < 1:
            raise ValueError("--shots and --jobs must be at least 1, --runs at least 0")
        unknown = [c for c in options.conditions if c not in CONDITIONS]
        if unknown:
            raise ValueError(f"unknown condition(s) {', '.join(unknown)}: "
                             f"use {', '.join(CONDITIONS)}")
    except ValueError as exc:
        print(f"bench document-camera: {exc}", file=sys.stderr)
        return 2
    return main(seconds=args.seconds, repeats=args.repeats, save_dir=args.save_dir,
                streaming=args.streaming, reading=False if args.no_reading else options)


def _still(args: argparse.Namespace) -> int:
    import sys

    from document_camera.sources import SourceError, open_source
    from document_camera.stills import make_still

    fmt = "jpeg" if args.output.suffix.lower() in (".jpg", ".jpeg") else "png"
    try:
        source = open_source(args.source)
        frame = source.read()
    except (SourceError, ValueError) as exc:
        print(f"document camera: {exc}", file=sys.stderr)
        return 2
    still = make_still(frame, image_format=fmt, source=source.description)
    args.output.write_bytes(still.data)
    print(still.metadata.to_json())
    for code in still.metadata.notices:
        print(f"notice: {code}", file=sys.stderr)
    return 0


def _stitch(args: argparse.Namespace) -> int:
    import sys

    import cv2

    from document_camera.stitching import stitch_tiles

    tiles = []
    for path in args.tiles:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            print(f"{path}: not an image", file=sys.stderr)
            return 2
        tiles.append(image)
    try:
        result = stitch_tiles(tiles, rows=args.rows, cols=args.cols, overlap=args.overlap)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if result.image is None:
        notice = result.notice
        print(f"{notice.text('en') if notice else 'rejected'} ({notice.detail if notice else ''})",
              file=sys.stderr)
        return 1
    cv2.imwrite(str(args.output), result.image)
    print(f"stitched {len(tiles)} tiles into {result.image.shape[1]}x{result.image.shape[0]}")
    return 0
