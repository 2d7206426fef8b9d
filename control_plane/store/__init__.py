"""Persistent state of the control plane (see db.py)."""

from control_plane.store.db import Conflict, JoinTokenRow, NodeRow, Store

__all__ = ["Conflict", "JoinTokenRow", "NodeRow", "Store"]
