"""Network interfaces from netlink (pyroute2), so the answer is the daemon's own network namespace."""

from __future__ import annotations

from pyroute2 import IPRoute

from stratum.v1 import types_pb2

IFF_UP = 0x1
IFF_RUNNING = 0x40  # the kernel's "operationally up" (RFC 2863 state up or unknown)


def _sys_net(name: str, attr: str) -> str | None:
    try:
        with open(f"/sys/class/net/{name}/{attr}") as f:
            return f.read().strip()
    except OSError:  # EINVAL for speed on virtual or down links, ENOENT outside our netns view
        return None


def link_speed(name: str, index: int, mac: str) -> int:
    """Mbit/s from sysfs, 0 when unknown.

    /sys shows the namespace it was mounted in, which need not be ours (a process moved
    with `unshare -n` keeps the old /sys), so a value counts only when the sysfs entry is
    the same interface netlink told us about.
    """
    if _sys_net(name, "ifindex") != str(index) or (_sys_net(name, "address") or "") != mac:
        return 0
    speed = _sys_net(name, "speed")
    try:
        return max(int(speed), 0) if speed is not None else 0  # -1 means unknown
    except ValueError:
        return 0


def interfaces() -> list[types_pb2.NetworkInterface]:
    with IPRoute() as ipr:  # a netlink socket opened in the calling thread's network namespace
        links = list(ipr.get_links())
        addrs = list(ipr.get_addr())
    by_index: dict[int, list[str]] = {}
    for a in addrs:
        # IFA_LOCAL is our end of a point-to-point link, where IFA_ADDRESS is the peer.
        ip = a.get_attr("IFA_LOCAL") or a.get_attr("IFA_ADDRESS")
        if ip:
            by_index.setdefault(a["index"], []).append(f"{ip}/{a['prefixlen']}")
    out = []
    for link in links:
        name = link.get_attr("IFLA_IFNAME")
        mac = link.get_attr("IFLA_ADDRESS") or ""
        if mac == "00:00:00:00:00:00":
            mac = ""  # loopback-like: no hardware address
        flags = link["flags"]
        out.append(types_pb2.NetworkInterface(
            name=name, mac=mac, addresses=by_index.get(link["index"], []),
            up=bool(flags & IFF_UP and flags & IFF_RUNNING), mtu=link.get_attr("IFLA_MTU") or 0,
            speed_mbps=link_speed(name, link["index"], link.get_attr("IFLA_ADDRESS") or ""),
        ))
    return out


class NetworkProbe:
    name = "network"

    def probe(self, caps: types_pb2.Capabilities, ctx) -> None:
        caps.interfaces.extend(interfaces())
