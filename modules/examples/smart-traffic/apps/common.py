"""What every smart-traffic program shares: reading Stratum's environment contract, one-line
errors for bad configuration, JSON log lines and a tiny HTTP server.

The programs depend on nothing of Stratum but its environment (see README.md): they run by hand
just as well, with the same variables set.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import urlsplit

PROG = os.path.splitext(os.path.basename(sys.argv[0] or "app"))[0]


class ConfigError(Exception):
    """Bad or missing configuration: the program prints the message as one line and exits 2."""


def run(main: Callable[[], int | None]) -> None:
    """Run `main`, turning a ConfigError into one clear line on stderr and exit status 2."""
    try:
        code = main()
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        code = 130
    sys.exit(code or 0)


def stop_on_signals(stop: threading.Event) -> None:
    """Set `stop` on SIGTERM or SIGINT. Not from the handler itself: Event.set takes a lock, and a
    second signal arriving while the first handler holds it deadlocks the main thread for good (a
    sensor hung that way until SIGKILL). The handler only writes a byte to a pipe; a thread sets it."""
    r, w = os.pipe()
    os.set_blocking(w, False)

    def handler(signum, frame):
        try:
            os.write(w, b"\0")
        except BlockingIOError:  # the pipe is full: a stop is on its way already
            pass

    def watch():
        os.read(r, 1)
        stop.set()

    threading.Thread(target=watch, name="signals", daemon=True).start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


# -- environment ------------------------------------------------------------------------------
def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, "").strip()
    if value:
        return value
    if default is None:
        raise ConfigError(f"environment variable {name} is not set")
    return default


def env_number(name: str, default: float, *, minimum: float | None = None, integer: bool = False) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return int(default) if integer else default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a{' whole' if integer else ''} number") from None
    if value != value or (minimum is not None and value < minimum):  # NaN, or below the minimum
        raise ConfigError(f"{name}={raw!r} must be at least {minimum:g}")
    return value


def env_port(name: str) -> int:
    """STRATUM_PORT_<NAME>: the port Stratum allocated for this named port."""
    var = f"STRATUM_PORT_{name.upper()}"
    port = int(env_number(var, -1, integer=True))
    if port < 0:
        raise ConfigError(f"environment variable {var} is not set")
    if not 0 < port < 65536:
        raise ConfigError(f"{var}={port} is not a TCP port (1-65535)")
    return port


def bind_host() -> str:
    """STRATUM_HOST: the address to listen on (127.0.0.1 when run by hand without it)."""
    return env_str("STRATUM_HOST", "127.0.0.1")


def target_var(target: str) -> str:
    """The variable holding a connects_to target's URL: `congestion` -> STRATUM_CONGESTION_URL."""
    return f"STRATUM_{target.upper().replace('-', '_')}_URL"


def target_url(target: str, scheme: str) -> tuple[str, str, int]:
    """(url, host, port) of a connects_to target, checked to be a `scheme`://host:port URL."""
    var = target_var(target)
    url = env_str(var)
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise ConfigError(f"{var}={url!r} is not a URL: {exc}") from None
    if parts.scheme != scheme or not host or not port:
        raise ConfigError(f"{var}={url!r} is not a {scheme}://host:port URL")
    return url.rstrip("/"), host, port


def mqtt_client_id(default_app: str) -> str:
    """A fixed client id per app instance (STRATUM_APP-STRATUM_INSTANCE): a persistent session
    survives restarts only if the process reconnects under the same id."""
    app = env_str("STRATUM_APP", default_app)
    instance = int(env_number("STRATUM_INSTANCE", 0, minimum=0, integer=True))
    return f"{app}-{instance}"


# -- logging ----------------------------------------------------------------------------------
_log_lock = threading.Lock()


def log(event: str, **fields) -> None:
    """One JSON object per line on stdout: easy to grep and to parse, never a secret (callers pass
    redacted values only)."""
    line = json.dumps({"ts": round(time.time(), 3), "app": PROG, "event": event, **fields}, default=str,
                      separators=(",", ":"))
    with _log_lock:
        print(line, flush=True)


# -- HTTP -------------------------------------------------------------------------------------
Route = Callable[[], tuple[int, str, bytes]]  # () -> (status, content type, body)


def json_body(value, status: int = 200) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(value, default=str).encode()


def serve_http(host: str, port: int, routes: dict[str, Route]) -> ThreadingHTTPServer:
    """Serve GET `routes` (exact paths, query ignored) from a daemon thread; 404 for anything else."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802 - http.server's naming
            route = routes.get(self.path.split("?", 1)[0])
            if route is None:
                status, ctype, body = 404, "text/plain", b"not found\n"
            else:
                try:
                    status, ctype, body = route()
                except Exception as exc:  # noqa: BLE001 - a failing page must not kill the server
                    status, ctype, body = 500, "text/plain", f"{type(exc).__name__}: {exc}\n".encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # polled every few seconds: not worth a log line each
            pass

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
