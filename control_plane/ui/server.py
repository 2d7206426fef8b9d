"""Serve the dashboard from the control plane process: uvicorn over HTTPS with the control plane's
own server certificate, in a thread with its own event loop, so rendering a large page never
delays the node sessions on the gRPC loop.

    ui = UiServer("127.0.0.1:7445", api_endpoint="127.0.0.1:7443", data_dir=dd, access_tokens=tokens,
                  session_ttl_s=8 * 3600)
    port = ui.start()      # OSError when the address cannot be listened on
    ui.stop()
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading

import uvicorn

from control_plane.ui.api import Api
from control_plane.ui.app import Dashboard, create_app
from control_plane.ui.picture import Pictures
from control_plane.ui.sessions import Sessions
from stratum.grpc_util import split_endpoint

log = logging.getLogger("stratum.ui")


def _loopback(endpoint: str) -> str:
    """Where this process reaches its own API: a wildcard listen address means loopback."""
    host, port = split_endpoint(endpoint)
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class UiServer:
    def __init__(self, listen: str, api_endpoint: str, data_dir, access_tokens, session_ttl_s: float,
                 live_s: float = 5.0):
        self.listen, self.data_dir = listen, data_dir
        self.api = Api(_loopback(api_endpoint), data_dir.ca_cert_pem)
        self.sessions = Sessions(session_ttl_s, data_dir.admin_token, access_tokens)
        self.dashboard = Dashboard(self.api, self.sessions, Pictures(self.api, data_dir.admin_token), live_s=live_s)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self) -> int:
        host, port = split_endpoint(self.listen, listen=True)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it: without, a response's headers and body go out as two
        # segments and the second waits for the client's delayed ACK (40 ms on Linux, every page).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            sock.close()
            raise OSError(f"cannot listen on {self.listen} (--ui-listen): {e.strerror or e}") from None
        sock.listen(128)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(create_app(self.dashboard), ssl_certfile=os.path.join(self.data_dir.path, "server.pem"),
                                ssl_keyfile=os.path.join(self.data_dir.path, "server.key"), log_config=None,
                                access_log=False, lifespan="off", server_header=False, timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)

        def run():
            asyncio.run(self._server.serve(sockets=[sock]))

        self._thread = threading.Thread(target=run, name="dashboard", daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.api.close()
