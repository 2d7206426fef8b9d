"""Health checks of app instances: an HTTP path answering 2xx, a port accepting TCP, or a command
exiting 0 (Nomad's http, tcp and script checks). Each returns (healthy, why not)."""

from __future__ import annotations

import asyncio

from stratum.v1 import apps_pb2 as a


async def http_ok(host: str, port: int, path: str, timeout: float) -> tuple[bool, str]:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, asyncio.TimeoutError) as e:
        return False, f"GET {path} on port {port}: {type(e).__name__}"
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        parts = line.decode(errors="replace").split()
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        return (200 <= status < 300), f"GET {path} on port {port} answered {status or line[:40]!r}"
    except (OSError, asyncio.TimeoutError, ValueError) as e:
        return False, f"GET {path} on port {port}: {type(e).__name__}"
    finally:
        writer.close()


async def tcp_ok(host: str, port: int, timeout: float) -> tuple[bool, str]:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, asyncio.TimeoutError) as e:
        return False, f"port {port} refused a connection ({type(e).__name__})"
    writer.close()
    return True, ""


async def exec_ok(argv: list[str], cwd: str, env: dict, timeout: float) -> tuple[bool, str]:
    try:
        proc = await asyncio.create_subprocess_exec(*argv, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                                                    start_new_session=True)
    except OSError as e:
        return False, f"{argv[0]}: {e.strerror or e}"
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return False, f"{argv[0]} took longer than {timeout:g}s"
    if proc.returncode == 0:
        return True, ""
    tail = out.decode(errors="replace").strip().splitlines()[-1:] if out else []
    return False, f"{argv[0]} exited {proc.returncode}" + (f": {tail[0][:200]}" if tail else "")


async def check(h: a.HealthCheck, ports: dict[str, int], host: str, cwd: str, env: dict) -> tuple[bool, str]:
    timeout = h.timeout_s or 2.0
    if h.http:
        name = h.port or min(ports)
        return await http_ok(host, ports[name], h.http, timeout)
    if h.tcp:
        return await tcp_ok(host, ports[h.tcp], timeout)
    if h.exec:
        return await exec_ok(list(h.exec), cwd, env, timeout)
    return True, ""
