"""Promotion: the gates a version must pass, their data-quality suite, and the one path
that changes what serves.

- :mod:`loopline.promotion.gates`: every check a candidate meets against floors and the
  champion (metrics, segments, latency), each listed when it fails.
- :mod:`loopline.promotion.quality`: the Evidently data-quality tests on the holdout.
- :mod:`loopline.promotion.promote`: promote, approve, roll back and set traffic; what the
  CLI, the flows and the dashboard call. Its names are this package's, so callers write
  ``promotion.promote(...)``.
"""

from loopline.promotion.promote import (
    APPROVAL_REQUESTED,
    PROMOTED,
    ROLLED_BACK,
    STAGED,
    Outcome,
    PromotionError,
    PromotionRefused,
    announce,
    approve,
    check_gates,
    checked_files,
    open_registry,
    promote,
    rollback,
    set_traffic,
    verified_model,
)

__all__ = [
    "APPROVAL_REQUESTED",
    "PROMOTED",
    "ROLLED_BACK",
    "STAGED",
    "Outcome",
    "PromotionError",
    "PromotionRefused",
    "announce",
    "approve",
    "check_gates",
    "checked_files",
    "open_registry",
    "promote",
    "rollback",
    "set_traffic",
    "verified_model",
]
