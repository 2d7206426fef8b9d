"""GPUs: NVML through pynvml when it is installed, else `nvidia-smi`, else none.

NVML is preferred (no process per query); nvidia-smi ships with every NVIDIA
driver, so it covers machines where nobody installed the Python bindings.
"""

from __future__ import annotations

import csv
import shutil
import subprocess

from stratum.v1 import types_pb2

SMI_QUERY = ["--query-gpu=index,name,memory.total,uuid,driver_version", "--format=csv,noheader,nounits"]
SMI_TIMEOUT_S = 10  # a wedged driver can hang nvidia-smi; never hang the daemon with it


def _int(text: str) -> int:
    try:
        return int(float(text))
    except ValueError:  # "[N/A]", "[Not Supported]"
        return 0


def parse_nvidia_smi_csv(text: str) -> list[types_pb2.Gpu]:
    """Parse `nvidia-smi --query-gpu=index,name,memory.total,uuid,driver_version --format=csv,noheader,nounits`."""
    gpus = []
    for row in csv.reader(text.splitlines(), skipinitialspace=True):
        if not row or not row[0].strip():
            continue
        if len(row) != 5:
            raise ValueError(f"unexpected nvidia-smi row with {len(row)} fields: {row!r}")
        index, name, memory, uuid, driver = (c.strip() for c in row)
        gpus.append(types_pb2.Gpu(index=_int(index), vendor="nvidia", model=name, memory_mb=_int(memory), uuid=uuid, driver_version=driver))
    return gpus


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)  # old pynvml returns bytes


def nvml_gpus(pynvml) -> list[types_pb2.Gpu]:
    pynvml.nvmlInit()
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            out.append(types_pb2.Gpu(
                index=i, vendor="nvidia", model=_text(pynvml.nvmlDeviceGetName(h)),
                memory_mb=pynvml.nvmlDeviceGetMemoryInfo(h).total // (1024 * 1024),
                uuid=_text(pynvml.nvmlDeviceGetUUID(h)), driver_version=driver,
            ))
        return out
    finally:
        pynvml.nvmlShutdown()


def smi_gpus() -> list[types_pb2.Gpu]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    done = subprocess.run([exe, *SMI_QUERY], capture_output=True, text=True, timeout=SMI_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"nvidia-smi exited {done.returncode}: {(done.stderr or done.stdout).strip()[:200]}")
    return parse_nvidia_smi_csv(done.stdout)


def import_pynvml():
    try:
        import pynvml  # from the nvidia-ml-py package

        return pynvml
    except ImportError:
        return None


class GpuProbe:
    name = "gpu"

    def probe(self, caps: types_pb2.Capabilities, ctx) -> None:
        pynvml = import_pynvml()
        if pynvml is not None:
            try:
                caps.gpus.extend(nvml_gpus(pynvml))
                return
            except pynvml.NVMLError:
                pass  # bindings without a usable driver library: ask nvidia-smi instead
        caps.gpus.extend(smi_gpus())
