"""`etapalvelu bench document-camera` and `etapalvelu document-camera …` (still, stitch)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(root: Any, bench: Any) -> None:
    parser = bench.add_parser(
        "document-camera",
        help="document camera: processing ms/frame and OCR readability through the relay",
        description="(a) pipeline ms per frame at 1080p and 4K; (b) OCR character error of "
        "a 10 pt A4 page sent as the document track through the relay at 2 Mbit/s, against "
        "the same page as an ordinary 30 fps camera track. Last line JSON.",
    )
    parser.add_argument("--seconds", type=float, default=12.0, help="streaming time per track")
    parser.add_argument("--repeats", type=int, default=8, help="frames timed per resolution")
    parser.add_argument("--save-dir", help="write the received frames as PNG here")
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
    from document_camera.bench import main

    return main(seconds=args.seconds, repeats=args.repeats, save_dir=args.save_dir)


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
