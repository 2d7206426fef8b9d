"""Test hosts in network namespaces: a bridge in the root namespace, one veth pair per host.

    root ns: bridge <name>-br 10.<n>.0.1/24   (the control plane listens here)
      └─ veth ── ns <name>-h1: eth0 10.<n>.0.11/24, default route via .1
      └─ veth ── ns <name>-h2: eth0 10.<n>.0.12/24 ...

Needs root (these machines run tests as root). Links can be cut with
`host.link_down()`. Everything is removed by `close()`.
"""

from __future__ import annotations

import os
import subprocess


def ip(*args: str, netns: str | None = None) -> str:
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {res.stderr.strip()}")
    return res.stdout


class Host:
    def __init__(self, netns: str, address: str, host_link: str):
        self.netns, self.address, self.host_link = netns, address, host_link

    def link_down(self) -> None:
        ip("link", "set", self.host_link, "down")

    def link_up(self) -> None:
        ip("link", "set", self.host_link, "up")


class TestNetwork:
    """A bridge plus hosts; `subnet` picks 10.<subnet>.0.0/24 (keep it unique per test)."""

    def __init__(self, subnet: int):
        if os.geteuid() != 0:
            raise RuntimeError("network namespace tests need root (ip netns, veth)")
        self.tag = f"st{os.getpid() % 10000}s{subnet}"
        self.prefix = f"10.{subnet}.0"
        self.bridge = f"{self.tag}br"
        self.gateway = f"{self.prefix}.1"
        self.hosts: list[Host] = []
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def add_host(self) -> Host:
        i = len(self.hosts) + 1
        ns, outer, inner = f"{self.tag}h{i}", f"{self.tag}v{i}", f"{self.tag}p{i}"
        address = f"{self.prefix}.{10 + i}"
        subprocess.run(["ip", "netns", "add", ns], check=True, timeout=30)
        ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        ip("link", "set", outer, "master", self.bridge)
        ip("link", "set", outer, "up")
        ip("link", "set", inner, "netns", ns)
        ip("link", "set", inner, "name", "eth0", netns=ns)
        ip("addr", "add", f"{address}/24", "dev", "eth0", netns=ns)
        ip("link", "set", "eth0", "up", netns=ns)
        ip("link", "set", "lo", "up", netns=ns)
        ip("route", "add", "default", "via", self.gateway, netns=ns)
        host = Host(ns, address, outer)
        self.hosts.append(host)
        return host

    def close(self) -> None:
        for host in self.hosts:
            subprocess.run(["ip", "netns", "del", host.netns], capture_output=True, timeout=30)
            subprocess.run(["ip", "link", "del", host.host_link], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=30)
