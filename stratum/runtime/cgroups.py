"""Per-replica cgroups: a cpu quota and a memory limit, changed while the replica runs (vertical
scaling, control_plane/autoscale).

    cg = Cgroups.detect()                    # v2 with cpu+memory controllers, else v1, else None
    cg.create("congestion-3")
    cg.add("congestion-3", pid)              # before bentoml forks its workers: they inherit it
    cg.set("congestion-3", cpu=0.5, memory_mb=512)
    cg.read("congestion-3")                  # {"cpu": 0.5, "memory_mb": 512}
    cg.remove("congestion-3")                # once its processes are gone

cgroup v2: `<root>/<prefix>/<name>/cpu.max` ("quota period") and `memory.max`, with the cpu and
memory controllers enabled down the tree. cgroup v1 (hybrid hosts mount the controllers there and
leave the unified hierarchy empty): `cpu/<prefix>/<name>/cpu.cfs_quota_us` and
`memory/<prefix>/<name>/memory.limit_in_bytes`. A limit of None removes it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PERIOD_US = 100_000


class CgroupError(Exception):
    pass


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as e:
        raise CgroupError(f"cannot write {value!r} to {path}: {e.strerror or e}") from None


class Cgroups:
    def __init__(self, mode: str, root: Path, prefix: str = "stratum"):
        if mode not in ("v1", "v2"):
            raise ValueError("mode is v1 or v2")
        self.mode, self.root, self.prefix = mode, Path(root), prefix

    @classmethod
    def detect(cls, root: str = "/sys/fs/cgroup", prefix: str = "stratum") -> "Cgroups | None":
        r = Path(root)
        for base in (r, r / "unified"):
            controllers = base / "cgroup.controllers"
            if controllers.is_file() and {"cpu", "memory"} <= set(controllers.read_text().split()):
                return cls("v2", base, prefix)
        if (r / "cpu" / "cpu.cfs_quota_us").is_file() and (r / "memory" / "memory.limit_in_bytes").is_file():
            return cls("v1", r, prefix)
        return None

    # -- where ------------------------------------------------------------------------------------
    def dirs(self, name: str) -> list[Path]:
        if self.mode == "v2":
            return [self.root / self.prefix / name]
        return [self.root / "cpu" / self.prefix / name, self.root / "memory" / self.prefix / name]

    @classmethod
    def usable(cls, root: str = "/sys/fs/cgroup", prefix: str = "stratum") -> "Cgroups | None":
        """detect(), and only when this process may create groups there (root, or a delegated tree)."""
        cg = cls.detect(root, prefix)
        if cg is None:
            return None
        try:
            cg.create(".probe")
            cg.remove(".probe", timeout=1.0)
        except (OSError, CgroupError):
            return None
        return cg

    def create(self, name: str) -> None:
        if self.mode == "v2":
            # controllers must be enabled on the way down, at every level of the prefix
            d = self.root
            for part in Path(self.prefix).parts:
                ctl = d / "cgroup.subtree_control"
                if not {"cpu", "memory"} <= set(ctl.read_text().split()):
                    _write(ctl, "+cpu +memory")
                d = d / part
                d.mkdir(exist_ok=True)
            ctl = d / "cgroup.subtree_control"
            if not {"cpu", "memory"} <= set(ctl.read_text().split()):
                _write(ctl, "+cpu +memory")
        for d in self.dirs(name):
            d.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        """Remove this prefix's own directories when nothing is left in them (best effort)."""
        tops = [self.root / self.prefix] if self.mode == "v2" else [self.root / c / self.prefix for c in ("cpu", "memory")]
        for top in tops:
            for d in sorted((p for p in top.glob("**/") if p.is_dir()), key=lambda p: -len(p.parts)):
                try:
                    os.rmdir(d)
                except OSError:
                    pass

    def add(self, name: str, pid: int) -> None:
        for d in self.dirs(name):
            _write(d / "cgroup.procs", str(pid))

    def pids(self, name: str) -> list[int]:
        d = self.dirs(name)[0]
        try:
            return [int(x) for x in (d / "cgroup.procs").read_text().split()]
        except FileNotFoundError:
            return []

    # -- limits -----------------------------------------------------------------------------------
    def set(self, name: str, cpu: float | None = None, memory_mb: int | None = None) -> None:
        quota = str(int(cpu * PERIOD_US)) if cpu else None
        mem = str(int(memory_mb) * 2**20) if memory_mb else None
        if self.mode == "v2":
            d = self.dirs(name)[0]
            _write(d / "cpu.max", f"{quota or 'max'} {PERIOD_US}")
            _write(d / "memory.max", mem or "max")
        else:
            cpu_d, mem_d = self.dirs(name)
            _write(cpu_d / "cpu.cfs_period_us", str(PERIOD_US))
            _write(cpu_d / "cpu.cfs_quota_us", quota or "-1")
            _write(mem_d / "memory.limit_in_bytes", mem or "-1")

    def read(self, name: str) -> dict:
        if self.mode == "v2":
            d = self.dirs(name)[0]
            quota, period = (d / "cpu.max").read_text().split()
            mem = (d / "memory.max").read_text().strip()
            return {"cpu": None if quota == "max" else int(quota) / int(period),
                    "memory_mb": None if mem == "max" else int(mem) // 2**20}
        cpu_d, mem_d = self.dirs(name)
        quota = int((cpu_d / "cpu.cfs_quota_us").read_text())
        period = int((cpu_d / "cpu.cfs_period_us").read_text())
        mem = int((mem_d / "memory.limit_in_bytes").read_text())
        return {"cpu": None if quota < 0 else quota / period,
                "memory_mb": None if mem >= 2**62 else mem // 2**20}  # v1 shows "no limit" as a huge number

    def remove(self, name: str, timeout: float = 10.0) -> None:
        """Remove the replica's groups once their processes have exited (rmdir fails while busy)."""
        deadline = time.monotonic() + timeout
        for d in self.dirs(name):
            while d.exists():
                try:
                    os.rmdir(d)
                except OSError:
                    if time.monotonic() > deadline:
                        raise CgroupError(f"{d} still has processes after {timeout:g}s") from None
                    time.sleep(0.05)
