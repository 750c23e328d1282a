"""Network namespaces for the resilience tests: a kiosk, an expert and the service on their own
hosts, joined through a router namespace, with real faults on the links.

    def test_something(netlab: NetLab) -> None:
        netlab.spawn("svc", [python, "-m", "http.server", "--bind", netlab.address["svc"]])
        netlab.run("kiosk", ["curl", ...])                    # a command inside a namespace
        netlab.impair_link("kiosk", Impairment(loss=0.05))   # both directions of a link
        netlab.netem("kiosk", "eth0", delay_ms=200, jitter_ms=50)   # one interface's egress
        netlab.cut_link("kiosk"); netlab.restore_link("kiosk")      # carrier lost / back
        netlab.change_address("kiosk", "10.213.1.3")
        netlab.chromium_wrapper("kiosk")    # executable_path for Playwright: Chromium in there

Topology (10.213.0.0/16, nothing routed to the host's network; only the `net` namespace
forwards):

    etp-<pid>-<n>-kiosk  eth0 10.213.1.2 ── kiosk  10.213.1.1 ┐
    etp-<pid>-<n>-expert eth0 10.213.2.2 ── expert 10.213.2.1 ├ etp-<pid>-<n>-net
    etp-<pid>-<n>-svc    eth0 10.213.0.2 ── svc    10.213.0.1 ┘

The builder itself lives in `expert_console/resilience_bench.py` (`NetLab`), because the
`etapalvelu bench resilience` command uses it too and the installed package cannot import
from tests/. Everything is done with `ip`/`tc` (iproute2) and, on a kernel without
`sch_netem` (like this workplace's), `iptables` NFQUEUE plus a small delay-line process for
loss, delay and jitter; scripts/test installs both. Teardown kills what runs in the
namespaces and deletes them, also when the test fails; namespaces left by a run that was
killed are removed by the next one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from expert_console.resilience_bench import (
    ROUTER,
    Impairment,
    NetLab,
    NetLabUnavailable,
    netlab_unavailable_reason,
    remove_stale_namespaces,
)

__all__ = [
    "ROUTER",
    "Impairment",
    "NetLab",
    "NetLabUnavailable",
    "netlab",
    "netlab_unavailable_reason",
    "remove_stale_namespaces",
    "require_netlab",
]


def require_netlab() -> None:
    """Skip the test when namespaces cannot be made here (not root, no `ip netns`)."""
    reason = netlab_unavailable_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def netlab() -> Iterator[NetLab]:
    """A fresh topology for one test, deleted afterwards whatever happened."""
    require_netlab()
    lab = NetLab.create()
    try:
        yield lab
    finally:
        lab.close()
