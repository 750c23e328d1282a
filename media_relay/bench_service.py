"""The relay under test in `etapalvelu bench relay`: the shipped `etapalvelu relay` service.

It is started as a deployment starts it (the same command, process and event loop), as a
subprocess of the benchmark, with loopback addresses, a generated control secret in a
temporary file and no Redis, and driven through `media_relay.remote.RemoteRelay`.
Also here: the CPU time of any process (all its threads) and network namespace setup.
"""

from __future__ import annotations

import ctypes
import os
import re
import secrets
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CONTROL_LINE = re.compile(r"relay node (\S+) control (ws://\S+)")
CLONE_NEWNET = 0x40000000
# The private network of a `--compare janus` run: Janus never gathers ICE candidates on a
# loopback interface, so it gets a veth end of its own; the address is local, and packets
# to it go through the loopback device as 127.0.0.1's do.
NETNS_INTERFACE = "bench0"
NETNS_PEER = "bench1"
NETNS_ADDRESS = "10.255.77.1"
PASS_THROUGH = ("ETAPALVELU_RELAY_PURE_PYTHON",)


def relay_command() -> list[str]:
    """`etapalvelu relay` from the environment the benchmark runs in."""
    script = Path(sys.executable).with_name("etapalvelu")
    if script.exists():
        return [str(script), "relay"]
    found = shutil.which("etapalvelu")
    if found:
        return [found, "relay"]
    return [sys.executable, "-c", "from signaling.cli.main import main; main()", "relay"]


class RelayService:
    """One `etapalvelu relay` process on loopback."""

    def __init__(
        self,
        preexec: Callable[[], None] | None = None,
        transport_cc: bool | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.preexec = preexec
        self.transport_cc = transport_cc
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.node_id = ""
        self.secret = secrets.token_urlsafe(32)
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._output: list[str] = []

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def secret_file(self) -> Path:
        assert self._folder is not None
        return Path(self._folder.name) / "relay-secret"

    def start(self, timeout: float = 30.0) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="bench-relay-")
        self.secret_file.write_text(self.secret, encoding="utf-8")
        self.secret_file.chmod(0o600)
        # the service's deployed settings, not this shell's (a database, Redis, ...); only
        # the relay switches an operator may set on a node pass through
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("ETAPALVELU_") or key in PASS_THROUGH
        }
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        command = [
            *relay_command(),
            "--node-id",
            "bench-relay",
            "--secret-file",
            str(self.secret_file),
            "--control-host",
            "127.0.0.1",
            "--control-port",
            "0",
            "--listen-address",
            "127.0.0.1",
            "--ice-address",
            "127.0.0.1",
        ]
        if self.transport_cc is not None:
            command.append("--transport-cc" if self.transport_cc else "--no-transport-cc")
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=self.preexec,  # only pins the CPU set before exec
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        buffer = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 65536)
                if not chunk:
                    break
                buffer += chunk
                *lines, rest = buffer.split(b"\n")
                buffer = rest
                for raw in lines:
                    line = raw.decode(errors="replace")
                    self._output.append(line)
                    match = CONTROL_LINE.search(line)
                    if match:
                        self.node_id, self.url = match.group(1), match.group(2)
                        self._drain_output()
                        return
            elif self.process.poll() is not None:
                break
        output = "\n".join(self._output[-20:])
        self.stop()
        raise RuntimeError(f"`{' '.join(command)}` did not print its control address:\n{output}")

    def _drain_output(self) -> None:
        """Keep reading the service's output so a full pipe never blocks it."""
        import threading

        process = self.process
        assert process is not None and process.stdout is not None
        stream = process.stdout

        def drain() -> None:
            for raw in iter(stream.readline, b""):
                self._output.append(raw.decode(errors="replace").rstrip())
                del self._output[:-50]

        threading.Thread(target=drain, daemon=True).start()

    def output_tail(self) -> str:
        return "\n".join(self._output[-20:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None


def process_cpu_seconds(pid: int) -> float:
    """CPU time of a process, all its live threads, in ns resolution (schedstat); falls back
    to /proc/<pid>/stat (clock ticks, includes exited threads)."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat") as handle:
                    total += int(handle.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
        if total:
            return total / 1e9
    except OSError:
        pass
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def last_cpu(pid: int) -> int | None:
    """The CPU a process last ran on (/proc/<pid>/stat field 39)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return int(fields[36])
    except (OSError, ValueError, IndexError):
        return None


def enter_private_network() -> None:
    """Move this process (and all it starts later) into a new network namespace with
    loopback up and a veth pair whose end `NETNS_INTERFACE` holds `NETNS_ADDRESS`.
    Call before any thread or child process exists."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"unshare(CLONE_NEWNET): {os.strerror(errno)} (needs root)")
    commands = [
        ["ip", "link", "set", "lo", "up"],
        ["ip", "link", "add", NETNS_INTERFACE, "type", "veth", "peer", "name", NETNS_PEER],
        ["ip", "addr", "add", f"{NETNS_ADDRESS}/32", "dev", NETNS_INTERFACE],
        ["ip", "link", "set", NETNS_PEER, "up"],
        ["ip", "link", "set", NETNS_INTERFACE, "up"],
    ]
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise OSError(f"{' '.join(command)}: {done.stderr.strip()}")


def remote_relay(node_id: str, url: str, secret: str) -> Any:
    """The client the signaling side uses for a relay node (media_relay/remote.py)."""
    from media_relay.remote import RemoteRelay

    # joins of a fresh participant include ICE gathering on the node: allow more than the
    # signaling default on a loaded 2-core machine
    return RemoteRelay(node_id, url, secret, timeout=30.0)
