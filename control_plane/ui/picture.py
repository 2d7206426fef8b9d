"""The overview's picture, built from the API and kept while someone looks at it.

    pictures = Pictures(api, admin_token)
    picture, body, age_s = pictures.get()     # views.overview(...) and its JSON, and how old it is

Building the picture reads every node, service, app and cloud pool through the API: on a cluster
of 1,000 nodes and 500 services that is a quarter of a second, which every open overview would
otherwise pay at each refresh. So the picture is built once and shared by every viewer:

- a request finds it fresh (younger than `fresh_s`) and takes it as it is;
- older, but younger than `stale_s`: it takes it, and a rebuild starts in the background;
- older still (nobody has looked for a while), or none yet: the request builds it and waits.

Rebuilds happen only while someone looks, never more than one at a time, and at most every
LIVE_SHARE times the last build's duration (a picture that takes 0.25 s to build is rebuilt at
most every 10 s), so watching the overview costs the control plane a bounded share of a core.
The picture is built with the admin token; it holds nothing a read token may not see (every
List* call is a read), and each viewer's own token is still checked at each request.
"""

from __future__ import annotations

import json
import logging
import threading
import time

from control_plane.ui import views
from stratum.v1 import control_plane_pb2 as cp

log = logging.getLogger("stratum.ui")

LIVE_SHARE = 40


class Pictures:
    def __init__(self, api, admin_token: str, fresh_s: float = 2.0, stale_s: float = 30.0):
        self.api, self.token = api, admin_token
        self.fresh_s, self.stale_s = fresh_s, stale_s
        self._picture: tuple[dict, bytes] | None = None
        self._built_at = 0.0
        self.build_s = 0.0  # how long the last build took
        self._lock = threading.Lock()  # guards the fields above
        self._build_lock = threading.Lock()  # one build at a time
        self._building = False

    def build(self) -> tuple[dict, bytes]:
        with self._build_lock:
            return self._build()

    def _build(self) -> tuple[dict, bytes]:
        t0 = time.perf_counter()
        call = lambda method, req: self.api.call(method, req, token=self.token, timeout=60)  # noqa: E731
        picture = views.overview(call("ListNodes", cp.ListNodesRequest()).nodes,
                                 call("ListServices", cp.ListServicesRequest()).services,
                                 call("ListApps", cp.ListAppsRequest()).apps,
                                 call("ListCloudPools", cp.ListCloudPoolsRequest()).pools)
        # "<" escaped: the page embeds the JSON in a <script type="application/json"> element
        body = json.dumps(picture, separators=(",", ":")).replace("<", "\\u003c").encode()
        self.build_s = time.perf_counter() - t0
        with self._lock:
            self._picture, self._built_at = (picture, body), time.monotonic()
        return picture, body

    def _background(self) -> None:
        try:
            self.build()
        except Exception:  # noqa: BLE001 - the next request tries again (and shows an error if it must wait)
            log.exception("rebuilding the overview failed")
        finally:
            self._building = False

    def get(self) -> tuple[dict, bytes, float]:
        """(picture, its JSON, its age in seconds)."""
        with self._lock:
            current, age = self._picture, time.monotonic() - self._built_at
            due = max(self.fresh_s, LIVE_SHARE * self.build_s)
            stale = max(self.stale_s, 3 * due)
            rebuild = current is not None and due <= age < stale and not self._building
            if rebuild:
                self._building = True
        if current is None or age >= stale:
            with self._build_lock:  # a build another request started meanwhile will do
                with self._lock:
                    if self._picture is not None and time.monotonic() - self._built_at < due:
                        return self._picture[0], self._picture[1], time.monotonic() - self._built_at
                picture, body = self._build()
            return picture, body, 0.0
        if rebuild:
            threading.Thread(target=self._background, name="overview-build", daemon=True).start()
        return current[0], current[1], age
