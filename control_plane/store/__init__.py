"""Persistent state of the control plane (see db.py)."""

from control_plane.store.db import Conflict, DatasetRow, JoinTokenRow, NodeRow, Store

__all__ = ["Conflict", "DatasetRow", "JoinTokenRow", "NodeRow", "Store"]
