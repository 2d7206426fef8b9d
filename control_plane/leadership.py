"""Which control plane runs the loops: one at a time, by a lease row in the shared store.

    lead = Leadership(store, api="10.0.0.5:7443", node="10.0.0.5:7444", ttl_s=10)
    lead.tick()                  # take or renew the lease (every ttl/3); False: a follower
    with lead.fence():           # the leader's writes: refused (store.Fenced) once its term has ended
        reconciler.rebalance()

Several control planes on one PostgreSQL database all serve the API; exactly one leads and runs
the reconciler, the autoscaler, the cloud pools, retraining and the app scheduler, and holds the
node sessions. The lease is renewed on the database's clock (no two hosts' clocks are compared);
each new term gets the next epoch, and every write of the leader's loops checks its epoch in the
same transaction (control_plane/store/db.py: Store.fenced), so a leader that was paused or cut off
past its lease cannot write once another has taken over, even before it notices.

Locally, a leader counts its lease from *before* the renewal it last confirmed, less a margin, on
its own monotonic clock: a process paused past its lease (SIGSTOP, a long GC, a frozen VM) finds
itself not leading the moment it runs again, before any tick, and does nothing a lease protects
(calling a cloud API, say) until it has renewed.

On SQLite (one control plane: the database is a file in its locked data dir) the lease is taken at
the first tick and kept, and nothing is fenced.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import time
from contextlib import contextmanager

from control_plane.store import Store
from stratum.logs import event

log = logging.getLogger("stratum.leadership")

MARGIN = 0.2  # the share of the lease this process does not count on (clock rates, scheduling)


class Leadership:
    def __init__(self, store: Store, api: str, node: str, ttl_s: float = 10.0, holder: str | None = None):
        self.store, self.ttl_s = store, ttl_s
        self.holder = holder or f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"
        self.api, self.node = api, node
        self.address = json.dumps({"api": api, "node": node}, sort_keys=True)
        self.epoch: int | None = None
        self._valid_until = 0.0  # monotonic
        self.leader_api = self.leader_node = ""  # the current leader's addresses, as last read
        self.terms = 0  # terms this process has led
        self.lease_left = 0.0  # seconds left on the current leader's lease, as last read

    def set_addresses(self, api: str, node: str) -> None:
        """Where others reach this control plane (known once it listens)."""
        self.api, self.node = api, node
        self.address = json.dumps({"api": api, "node": node}, sort_keys=True)

    @property
    def is_leader(self) -> bool:
        if self.epoch is None:
            return False
        # SQLite holds one control plane (its file is in this one's data dir, which is locked): once
        # taken, the lease is not at stake, and a stalled event loop must not stop the control plane.
        return self.store.kind == "sqlite" or time.monotonic() < self._valid_until

    def tick(self) -> tuple[bool, bool]:
        """Take or renew the lease. Returns (leading now, whether that changed). Blocking: call it in
        a thread. A store it cannot reach ends its leadership (another may be taking over)."""
        was = self.is_leader
        started = time.monotonic()
        try:
            self.store.announce(self.holder, self.address, 3 * self.ttl_s)
            epoch, holder, address, left = self.store.claim_lease(self.holder, self.address, self.ttl_s)
        except Exception as e:  # noqa: BLE001 - unreachable store: not leading, try again next tick
            if was or self.epoch is not None:
                event(log, "leadership lost: the store is unreachable", level=logging.WARNING, error=str(e)[:200])
            self.epoch = None
            return False, was
        self._addresses(address)
        self.lease_left = left
        if epoch is None:
            if self.epoch is not None:
                event(log, "stepped down", level=logging.WARNING, epoch=self.epoch, leader=holder)
            self.epoch = None
            return False, was
        if epoch != self.epoch:
            self.terms += 1
            event(log, "leading", epoch=epoch, holder=self.holder, previous_epoch=self.epoch)
        self.epoch = epoch
        self._valid_until = started + self.ttl_s * (1 - MARGIN)
        return True, not was

    def _addresses(self, address: str) -> None:
        try:
            a = json.loads(address) if address else {}
        except ValueError:
            a = {}
        self.leader_api, self.leader_node = a.get("api", ""), a.get("node", "")

    @contextmanager
    def fence(self):
        """Writes inside commit only under this term (store.Fenced otherwise)."""
        epoch = self.epoch
        if epoch is None:
            from control_plane.store.db import Fenced

            raise Fenced("not the leader")
        with self.store.fenced(self.holder, epoch):
            yield epoch

    def node_listeners(self) -> list[str]:
        """The node listeners of every live control plane, the leader's first (for Welcome)."""
        try:
            found = [json.loads(a).get("node", "") for _, a in self.store.members()]
        except Exception:  # noqa: BLE001 - the leader's own is enough to go on with
            found = []
        first = [self.node] if self.is_leader else []
        return list(dict.fromkeys(x for x in first + found if x))

    def release(self) -> None:
        """A clean stop gives the lease up, so a follower takes over at its next tick."""
        if self.epoch is not None:
            try:
                self.store.release_lease(self.holder)
                event(log, "leadership released", epoch=self.epoch)
            except Exception:  # noqa: BLE001 - it expires by itself
                pass
        self.epoch = None
