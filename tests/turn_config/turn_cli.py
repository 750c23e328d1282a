"""Run `etapalvelu turn …` through the same registration hook signaling/cli/main.py uses, but
without importing the other packages' commands (so this suite tests only its own)."""

from __future__ import annotations

import argparse

from turn_config.commands import register


def run_turn(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="etapalvelu")
    root = parser.add_subparsers(dest="command")
    bench = root.add_parser("bench").add_subparsers(dest="bench")
    register(root, bench)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)
