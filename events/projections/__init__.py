"""Projections: pure folds from recorded events to the state the service held."""

from events.projections.health import DbHealth, HealthStatus, apply_health
from events.projections.service_view import ServiceView, fold, replay
from events.projections.tree import TreeEntry, apply_tree

__all__ = [
    "DbHealth",
    "HealthStatus",
    "ServiceView",
    "TreeEntry",
    "apply_health",
    "apply_tree",
    "fold",
    "replay",
]
