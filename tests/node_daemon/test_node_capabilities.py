"""Each probe checked against a source that does not go through our code (coreutils, iproute2, /proc)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time

import pytest

from node_daemon.capabilities import ProbeContext, collect, cpu, disk, gpu, memory, network, os_info
from stratum.v1 import types_pb2
from tests.harness import nproc

MIB = 1024 * 1024


def run_probe(probe, data_dir="/") -> types_pb2.Capabilities:
    caps = types_pb2.Capabilities()
    probe.probe(caps, ProbeContext(data_dir=data_dir))
    return caps


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


# --- cpu -------------------------------------------------------------------------------------

def test_cpu_cores_match_nproc():
    assert run_probe(cpu.CpuProbe()).cpu_cores == nproc()


def test_cpu_cores_honour_affinity():
    # Pinned to one CPU the daemon can only use one, whatever the machine has.
    code = "from node_daemon.capabilities import cpu, ProbeContext; from stratum.v1 import types_pb2 as t; c = t.Capabilities(); cpu.CpuProbe().probe(c, ProbeContext('/')); print(c.cpu_cores)"
    first_cpu = sorted(os.sched_getaffinity(0))[0]
    out = sh("taskset", "-c", str(first_cpu), sys.executable, "-c", code)
    assert int(out) == 1


def _cpuinfo_blocks() -> list[dict[str, str]]:
    blocks = []
    for block in open("/proc/cpuinfo").read().split("\n\n"):
        fields = {}
        for line in block.splitlines():
            k, sep, v = line.partition(":")
            if sep:
                fields[k.strip()] = v.strip()
        if fields:
            blocks.append(fields)
    return blocks


def test_cpu_physical_cores_match_cpuinfo():
    blocks = _cpuinfo_blocks()
    if not all("core id" in b and "physical id" in b for b in blocks):
        pytest.skip("/proc/cpuinfo has no core topology here")
    assert run_probe(cpu.CpuProbe()).cpu_physical_cores == len({(b["physical id"], b["core id"]) for b in blocks})


def test_cpu_model_and_arch():
    caps = run_probe(cpu.CpuProbe())
    assert caps.arch == sh("uname", "-m").strip()
    if shutil.which("lscpu"):
        lscpu = dict(line.split(":", 1) for line in sh("lscpu").splitlines() if ":" in line)
        if "Model name" in lscpu and lscpu["Model name"].strip() != "-":
            assert caps.cpu_model == lscpu["Model name"].strip()
    assert caps.cpu_model


def test_cpu_mhz_is_the_reported_maximum_or_nominal_clock():
    caps = run_probe(cpu.CpuProbe())
    max_path = "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"
    if os.path.exists(max_path):
        expected = [int(open(max_path).read()) / 1000]
    else:
        expected = [float(b["cpu MHz"]) for b in _cpuinfo_blocks() if "cpu MHz" in b]
    if not expected:
        pytest.skip("the kernel reports no CPU frequency here")
    assert min(expected) * 0.95 <= caps.cpu_mhz <= max(expected) * 1.05


# --- memory and disk --------------------------------------------------------------------------

def test_memory_matches_meminfo():
    kib = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal:"))
    assert run_probe(memory.MemoryProbe()).memory_mb == kib // 1024


def test_disk_matches_df(tmp_path):
    caps = run_probe(disk.DiskProbe(), str(tmp_path))
    size, avail = (int(x) for x in sh("df", "-B1", "--output=size,avail", str(tmp_path)).splitlines()[1].split())
    assert caps.disk_mb == size // MIB
    assert abs(caps.disk_free_mb - avail // MIB) <= 256  # other processes write meanwhile


def test_disk_of_another_file_system(tmp_path):
    # /dev/shm is a different file system from most data dirs; the probe must follow the path.
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm")
    size = int(sh("df", "-B1", "--output=size", "/dev/shm").splitlines()[1])
    assert run_probe(disk.DiskProbe(), "/dev/shm").disk_mb == size // MIB


# --- gpu --------------------------------------------------------------------------------------

SMI_SAMPLE = """\
0, NVIDIA H100 80GB HBM3, 81559, GPU-5e3c1d2a-0000-1111-2222-333344445555, 550.54.15
1, NVIDIA A100-SXM4-40GB, 40960, GPU-aa11bb22-3333-4444-5555-666677778888, 550.54.15
"""


def test_parse_nvidia_smi_csv():
    gpus = gpu.parse_nvidia_smi_csv(SMI_SAMPLE)
    assert [(g.index, g.vendor, g.model, g.memory_mb, g.uuid, g.driver_version) for g in gpus] == [
        (0, "nvidia", "NVIDIA H100 80GB HBM3", 81559, "GPU-5e3c1d2a-0000-1111-2222-333344445555", "550.54.15"),
        (1, "nvidia", "NVIDIA A100-SXM4-40GB", 40960, "GPU-aa11bb22-3333-4444-5555-666677778888", "550.54.15"),
    ]


def test_parse_nvidia_smi_csv_unknown_memory_and_blank_lines():
    gpus = gpu.parse_nvidia_smi_csv("\n0, Tesla T4, [N/A], GPU-1, 470.1\n\n")
    assert len(gpus) == 1 and gpus[0].memory_mb == 0 and gpus[0].model == "Tesla T4"


def test_parse_nvidia_smi_csv_rejects_other_shapes():
    with pytest.raises(ValueError):
        gpu.parse_nvidia_smi_csv("0, only, three\n")
    assert gpu.parse_nvidia_smi_csv("") == []


def test_gpu_probe_on_this_machine():
    caps = run_probe(gpu.GpuProbe())
    if gpu.import_pynvml() is None and shutil.which("nvidia-smi") is None:
        assert list(caps.gpus) == []
    elif shutil.which("nvidia-smi"):
        listed = [line for line in sh("nvidia-smi", "-L").splitlines() if line.startswith("GPU ")]
        assert len(caps.gpus) == len(listed)


def _fake_smi(tmp_path, monkeypatch, script: str):
    """An `nvidia-smi` stand-in on PATH, to exercise the subprocess path of the probe (unit level only)."""
    exe = tmp_path / "bin" / "nvidia-smi"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{exe.parent}:{os.environ['PATH']}")
    monkeypatch.setattr(gpu, "import_pynvml", lambda: None)


def test_gpu_probe_reads_nvidia_smi(tmp_path, monkeypatch):
    _fake_smi(tmp_path, monkeypatch, f"cat <<'X'\n{SMI_SAMPLE}X\n")
    caps = run_probe(gpu.GpuProbe())
    assert [g.uuid for g in caps.gpus] == [g.uuid for g in gpu.parse_nvidia_smi_csv(SMI_SAMPLE)]


def test_failing_nvidia_smi_is_skipped_by_collect(tmp_path, monkeypatch, caplog):
    _fake_smi(tmp_path, monkeypatch, "echo 'NVIDIA-SMI has failed' >&2; exit 9\n")
    with caplog.at_level(logging.WARNING):
        caps = collect(str(tmp_path))
    assert list(caps.gpus) == []
    assert caps.cpu_cores == nproc()  # the other probes still ran
    assert any(getattr(r, "fields", {}).get("probe") == "gpu" for r in caplog.records)


# --- collect ----------------------------------------------------------------------------------

class _Boom:
    name = "boom"

    def probe(self, caps, ctx):
        raise OSError("no such thing")


def test_collect_skips_a_failing_probe(caplog):
    with caplog.at_level(logging.WARNING):
        caps = collect("/", [_Boom(), memory.MemoryProbe()])
    assert caps.memory_mb > 0
    assert [r.fields["probe"] for r in caplog.records if hasattr(r, "fields")] == ["boom"]


# --- network ----------------------------------------------------------------------------------

def _ip_json() -> dict[str, dict]:
    return {i["ifname"]: i for i in json.loads(sh("ip", "-j", "addr"))}


def _expected(i: dict, operstate: str) -> tuple:
    mac = i.get("address", "")
    return (
        i["ifname"],
        "" if mac == "00:00:00:00:00:00" else mac,
        sorted(f"{a['local']}/{a['prefixlen']}" for a in i.get("addr_info", []) if "local" in a),
        "UP" in i["flags"] and operstate in ("up", "unknown"),
        i["mtu"],
    )


def _sys_operstate(name: str) -> str:
    try:
        return open(f"/sys/class/net/{name}/operstate").read().strip()
    except OSError:
        return "unknown"


def test_network_matches_iproute2():
    caps = run_probe(network.NetworkProbe())
    got = {n.name: (n.name, n.mac, sorted(n.addresses), n.up, n.mtu) for n in caps.interfaces}
    ip = _ip_json()
    assert set(got) == set(ip)
    for name, info in ip.items():
        assert got[name] == _expected(info, _sys_operstate(name)), name


def test_network_speed_matches_sysfs():
    for n in run_probe(network.NetworkProbe()).interfaces:
        try:
            raw = int(open(f"/sys/class/net/{n.name}/speed").read())
        except (OSError, ValueError):
            raw = 0
        assert n.speed_mbps == max(raw, 0), n.name


NETNS_PROBE = (
    "import json; from node_daemon.capabilities import network; "
    "print(json.dumps([[n.name, list(n.addresses), n.up, n.mtu, n.speed_mbps] for n in network.interfaces()]))"
)


def _need_root_ip():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.fail("needs root and iproute2")


@pytest.mark.netns
def test_network_inside_a_named_netns():
    _need_root_ip()
    ns = f"stratum-test-{os.getpid()}"
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    except subprocess.CalledProcessError as e:
        pytest.fail(f"cannot create a network namespace here: {e.stderr.strip()}")
    probe = ["ip", "netns", "exec", ns, sys.executable, "-c", NETNS_PROBE]
    try:
        # A veth pair (dummy links need a module that is not always there).
        for cmd in (["link", "add", "st0", "mtu", "1280", "type", "veth", "peer", "name", "st1"],
                    ["addr", "add", "10.99.0.7/24", "dev", "st0"], ["link", "set", "st0", "up"], ["link", "set", "lo", "up"]):
            subprocess.run(["ip", "-n", ns, *cmd], check=True)
        by_name = {row[0]: row for row in json.loads(sh(*probe))}
        assert set(by_name) == {"lo", "st0", "st1"}  # nothing of the host's interfaces
        assert by_name["st0"][1][0] == "10.99.0.7/24" and by_name["st0"][3] == 1280
        assert by_name["lo"][1][0] == "127.0.0.1/8" and by_name["lo"][2] is True
        assert by_name["st0"][2] is False  # administratively up, but its peer is down: no carrier
        subprocess.run(["ip", "-n", ns, "link", "set", "st1", "up"], check=True)
        for _ in range(50):  # the kernel publishes carrier changes asynchronously (linkwatch)
            by_name = {row[0]: row for row in json.loads(sh(*probe))}
            if by_name["st0"][2] and by_name["st1"][2]:
                break
            time.sleep(0.1)
        assert by_name["st0"][2] is True and by_name["st1"][2] is True
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


@pytest.mark.netns
def test_network_in_a_netns_without_its_own_sysfs():
    # `unshare -n` gives a fresh namespace but keeps the host's /sys mounted: netlink must
    # still win, and no host interface's sysfs data may leak in.
    _need_root_ip()
    if shutil.which("unshare") is None:
        pytest.fail("needs unshare (util-linux)")
    try:
        out = json.loads(sh("unshare", "-n", sys.executable, "-c", NETNS_PROBE))
    except subprocess.CalledProcessError as e:
        pytest.fail(f"cannot unshare the network namespace here: {e.stderr.strip()[-200:]}")
    assert out == [["lo", [], False, 65536, 0]]


# --- os ---------------------------------------------------------------------------------------

def test_os_info_matches_uname_and_os_release():
    caps = run_probe(os_info.OsProbe())
    assert caps.os == sh("uname", "-s").strip().lower()
    assert caps.kernel == sh("uname", "-r").strip()
    assert caps.hostname == sh("uname", "-n").strip()
    if os.path.exists("/etc/os-release"):
        # Let a shell do the parsing (os-release is a shell fragment), independently of ours.
        assert caps.os_release == sh("sh", "-c", '. /etc/os-release && printf %s "$PRETTY_NAME"')
    import stratum

    assert caps.daemon_version == stratum.__version__


def test_pretty_name_with_quotes(tmp_path):
    p = tmp_path / "os-release"
    p.write_text('NAME=X\nPRETTY_NAME="Ubuntu 24.04.1 LTS"\n')
    assert os_info.read_pretty_name([str(tmp_path / "missing"), str(p)]) == "Ubuntu 24.04.1 LTS"
    assert os_info.read_pretty_name([str(tmp_path / "missing")]) == ""
