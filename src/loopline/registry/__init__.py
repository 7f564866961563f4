"""Loopline's model registry: what BentoML does not keep about a model version.

Stages, champion/challenger aliases, deployment policy, approvals and an append-only,
hash-chained history, in SQLite by default or PostgreSQL by URL. Importing this package
opens no connection and touches no file.
"""

from loopline.registry.errors import (
    ApprovalError,
    DuplicateVersion,
    IllegalTransition,
    InvalidInput,
    NoPreviousVersion,
    RegistryConflict,
    RegistryError,
    UnknownModel,
    UnknownVersion,
)
from loopline.registry.records import (
    CHALLENGER,
    CHAMPION,
    Action,
    Approval,
    ChainBreak,
    HistoryEntry,
    Policy,
    PolicyKind,
    ServedAt,
    Stage,
    VersionRecord,
)
from loopline.registry.registry import Registry
from loopline.registry.rules import LEGAL_MOVES
from loopline.registry.view import RegistryView

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "LEGAL_MOVES",
    "Action",
    "Approval",
    "ApprovalError",
    "ChainBreak",
    "DuplicateVersion",
    "HistoryEntry",
    "IllegalTransition",
    "InvalidInput",
    "NoPreviousVersion",
    "Policy",
    "PolicyKind",
    "Registry",
    "RegistryConflict",
    "RegistryError",
    "RegistryView",
    "ServedAt",
    "Stage",
    "UnknownModel",
    "UnknownVersion",
    "VersionRecord",
]
