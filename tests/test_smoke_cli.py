import subprocess
import sys


def test_help_lists_subcommands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "signaling", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "bench" in out
