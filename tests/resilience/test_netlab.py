"""The namespace topology itself: reachability, impairments, link faults, isolation, teardown.

A UDP echo server runs in the service's namespace and a client in the kiosk's; no browser.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.support.netns import ROUTER, Impairment, NetLab

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

ECHO_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 9999))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(data, peer)
"""

# Sends `count` datagrams 10 ms apart and prints {"received": n, "rtt_ms": [...]} as JSON.
ECHO_CLIENT = """
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
count = int(sys.argv[2]); sent = {}; rtt = {}
def receive():
    while True:
        try:
            data, _ = s.recvfrom(2048)
        except BlockingIOError:
            return
        i = int(data); rtt[i] = (time.monotonic() - sent[i]) * 1000
for i in range(count):
    sent[i] = time.monotonic()
    try:
        s.sendto(str(i).encode(), (sys.argv[1], 9999))
    except OSError:
        pass
    time.sleep(0.01); receive()
end = time.monotonic() + 1.0
while time.monotonic() < end:
    time.sleep(0.01); receive()
print(json.dumps({"received": len(rtt), "rtt_ms": sorted(rtt.values())}))
"""


def _echo(lab: NetLab, count: int) -> dict[str, object]:
    out = lab.run("kiosk", [sys.executable, "-c", ECHO_CLIENT, lab.address["svc"], str(count)])
    result: dict[str, object] = json.loads(out)
    return result


def _start_echo_server(lab: NetLab) -> None:
    server = lab.spawn("svc", [sys.executable, "-c", ECHO_SERVER, lab.address["svc"]],
                       stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def test_topology_impairments_and_faults(netlab: NetLab) -> None:
    _start_echo_server(netlab)
    clean = _echo(netlab, 50)
    assert clean["received"] == 50

    netlab.impair_link("kiosk", Impairment(delay_ms=100, jitter_ms=20))
    delayed = _echo(netlab, 60)
    rtts = delayed["rtt_ms"]
    assert isinstance(rtts, list) and len(rtts) == 60
    # one-way 100 ± 20 ms each way: the round trip is 160..240 ms, around 200
    assert 150 <= min(rtts) and max(rtts) <= 290 and 180 <= _median(rtts) <= 230, rtts

    netlab.impair_link("kiosk", Impairment(loss=0.3))
    lossy = _echo(netlab, 200)
    # 30 % each way: about half of the round trips survive (0.7² = 49 %)
    assert 60 <= int(lossy["received"]) <= 140, lossy["received"]  # type: ignore[call-overload]

    netlab.clear_link("kiosk")
    assert _echo(netlab, 20)["received"] == 20

    netlab.cut_link("kiosk")
    assert "NO-CARRIER" in netlab.run("kiosk", ["ip", "link", "show", "eth0"])
    assert _echo(netlab, 20)["received"] == 0
    netlab.restore_link("kiosk")
    time.sleep(0.2)
    assert _echo(netlab, 20)["received"] == 20

    netlab.change_address("kiosk", "10.213.1.3", down_seconds=0.1)
    assert "10.213.1.3/24" in netlab.run("kiosk", ["ip", "-4", "addr", "show", "eth0"])
    assert _echo(netlab, 20)["received"] == 20


def test_rate_limit_is_a_token_bucket(netlab: NetLab) -> None:
    netlab.netem(ROUTER, "kiosk", rate_kbit=500)
    shown = netlab.run(ROUTER, ["tc", "qdisc", "show", "dev", "kiosk"])
    assert "tbf" in shown and "500Kbit" in shown, shown
    netlab.clear(ROUTER, "kiosk")
    assert "tbf" not in netlab.run(ROUTER, ["tc", "qdisc", "show", "dev", "kiosk"])


def test_namespaces_reach_nothing_outside(netlab: NetLab) -> None:
    # Only 10.213.0.0/16 is routed: any other destination is refused before a packet leaves.
    probe = (
        "import errno, socket\n"
        "s = socket.socket(); s.settimeout(1)\n"
        "print(errno.errorcode.get(s.connect_ex(('192.0.2.1', 80)), 'connected'))\n"
    )
    for role in ("kiosk", "expert", "svc", ROUTER):
        assert netlab.run(role, [sys.executable, "-c", probe]).strip() == "ENETUNREACH", role
    assert "default" not in netlab.run(ROUTER, ["ip", "route"])


def test_teardown_deletes_everything() -> None:
    from tests.support.netns import require_netlab

    require_netlab()
    lab = NetLab.create()
    lab.spawn("svc", [sys.executable, "-c", "import time; time.sleep(60)"])
    lab.impair_link("kiosk", Impairment(loss=0.1))
    names = set(lab.namespaces.values())
    lab.close()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not names & {line.split()[0] for line in listed.splitlines() if line.strip()}
    assert not lab.workdir.exists()
