"""Start `etapalvelu relay` node processes from Python and wait until they listen (tests,
benchmarks): the real command, in a process of its own.

    node = await start_node("n1", secret_file, redis_url="redis://127.0.0.1:6379/0",
                            prefix="etapalvelu-test-1a2b")
    node.control_url      # ws://127.0.0.1:PORT/control, read from the node's stdout
    node.kill()           # kill -9;  node.terminate(): SIGTERM;  await node.stop(): and wait
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = ["NodeProcess", "node_command", "start_node"]

ROOT = Path(__file__).resolve().parents[1]
READY = re.compile(r"^relay node (\S+) control (\S+)$")


@dataclass
class NodeProcess:
    node_id: str
    control_url: str
    process: subprocess.Popen[str]

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    @property
    def http_url(self) -> str:
        """http://host:port of the control server (/healthz, /metrics)."""
        url = self.control_url.replace("wss://", "https://").replace("ws://", "http://")
        return url.removesuffix("/control")

    def _signal(self, signum: int) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)

    def kill(self) -> None:
        """kill -9: no deregistration; the registry record expires after its TTL."""
        self._signal(signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM: the node closes its rooms, deregisters and exits 0."""
        self._signal(signal.SIGCONT)  # a frozen node would never see it
        self._signal(signal.SIGTERM)

    def freeze(self) -> None:
        """SIGSTOP: the node keeps its sockets but answers nothing (a hung node)."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)

    async def wait(self, within: float) -> int | None:
        """The exit status, or None if still running after `within` seconds."""
        try:
            return await asyncio.get_running_loop().run_in_executor(
                None, functools.partial(self.process.wait, within)
            )
        except subprocess.TimeoutExpired:
            return None

    async def stop(self, grace: float = 10.0) -> int:
        """SIGTERM and wait; kill -9 after `grace` seconds. Returns the exit status."""
        self.terminate()
        status = await self.wait(grace)
        if status is None:
            self.kill()
            status = await self.wait(5.0)
        return status if status is not None else -9


def node_command(
    node_id: str,
    secret_file: str | Path,
    *,
    redis_url: str | None = None,
    prefix: str = "etapalvelu",
    heartbeat: float = 1.0,
    ttl: float = 3.0,
    site: str | None = None,
    address: str = "127.0.0.1",
    control_port: int = 0,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The argv of an `etapalvelu relay` node listening on `address` only."""
    argv = [
        sys.executable,
        "-m",
        "signaling.cli.main",
        "relay",
        "--node-id",
        node_id,
        "--secret-file",
        str(secret_file),
        "--control-host",
        address,
        "--control-port",
        str(control_port),
        "--listen-address",
        address,
        "--ice-address",
        address,
        "--redis-prefix",
        prefix,
        "--heartbeat",
        str(heartbeat),
        "--ttl",
        str(ttl),
    ]
    if redis_url:
        argv += ["--redis-url", redis_url]
    if site:
        argv += ["--site", site]
    return argv + list(extra_args)


async def start_node(
    node_id: str,
    secret_file: str | Path,
    *,
    redis_url: str | None = None,
    prefix: str = "etapalvelu",
    heartbeat: float = 1.0,
    ttl: float = 3.0,
    site: str | None = None,
    address: str = "127.0.0.1",
    control_port: int = 0,
    extra_args: Sequence[str] = (),
    stderr: IO[Any] | None = None,
    env: dict[str, str] | None = None,
    ready_timeout: float = 30.0,
) -> NodeProcess:
    """Start a node and wait for its `relay node <id> control <url>` line (it is listening and,
    with Redis, registered). Raises RuntimeError (after killing it) if it does not come."""
    argv = node_command(
        node_id,
        secret_file,
        redis_url=redis_url,
        prefix=prefix,
        heartbeat=heartbeat,
        ttl=ttl,
        site=site,
        address=address,
        control_port=control_port,
        extra_args=extra_args,
    )
    # Popen returns at once; the wait for the ready line below does not block the loop
    process = subprocess.Popen(  # noqa: ASYNC220
        argv,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    assert process.stdout is not None
    stdout = process.stdout
    loop = asyncio.get_running_loop()
    lines: list[str] = []
    try:
        async with asyncio.timeout(ready_timeout):
            while True:
                line = await loop.run_in_executor(None, stdout.readline)
                if not line:
                    raise RuntimeError(
                        f"relay node {node_id} exited ({process.wait()}): {''.join(lines)}"
                    )
                lines.append(line)
                match = READY.match(line.strip())
                if match:
                    return NodeProcess(match.group(1), match.group(2), process)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()  # also ends the blocked readline (EOF)
        process.wait()
        raise
