"""The `etapalvelu` command line.

Each package contributes its own subcommands through a `commands` module exposing
`register(root, bench)`: `root` is the top-level subparser set, `bench` the one under
`etapalvelu bench`. Handlers are set with `parser.set_defaults(func=...)`, take the parsed
arguments and return an exit status. Heavy imports (aiortc, OpenCV) happen inside the
handlers so that `etapalvelu --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMAND_MODULES = (
    "signaling.cli.commands",
    "media_relay.commands",
    "endpoint.commands",
    "endpoint.document_commands",
    "expert_console.commands",
    "document_camera.commands",
    "turn_config.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="etapalvelu",
        description="Etäpalvelu: video remote service for one-stop public service offices.",
    )
    root = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench_parser = root.add_parser(
        "bench",
        help="run a benchmark and print its figures against a baseline",
        description="Benchmarks print their figures and the baseline they compare against "
        "in the same run; the last line of output is JSON.",
    )
    bench = bench_parser.add_subparsers(dest="bench", metavar="BENCHMARK")
    bench_parser.set_defaults(func=lambda _args: _usage(bench_parser))
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # that package contributes no commands yet
            raise
        module.register(root, bench)
    parser.set_defaults(func=lambda _args: _usage(parser))
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    status = args.func(args)
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
