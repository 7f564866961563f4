"""Errors raised by the model registry; every one leaves the registry unchanged."""

from __future__ import annotations


class RegistryError(Exception):
    """Base class of every registry error."""


class InvalidInput(RegistryError, ValueError):
    """An argument is malformed: empty actor or reason, unknown stage, non-numeric metric..."""


class UnknownVersion(RegistryError, LookupError):
    """No model version with that tag is registered."""

    def __init__(self, version: str) -> None:
        super().__init__(f"unknown model version {version!r}: it was never registered")
        self.version = version


class UnknownModel(RegistryError, LookupError):
    """No version of that model is registered."""

    def __init__(self, model_name: str) -> None:
        super().__init__(f"unknown model {model_name!r}: no version of it is registered")
        self.model_name = model_name


class DuplicateVersion(RegistryError):
    """The version is already registered."""

    def __init__(self, version: str) -> None:
        super().__init__(f"model version {version!r} is already registered")
        self.version = version


class IllegalTransition(RegistryError):
    """The requested stage change is not allowed from the version's current stage."""


class ApprovalError(RegistryError):
    """An approval is missing, already pending, or given by someone other than the approver."""


class NoPreviousVersion(RegistryError):
    """A rollback was asked for but no earlier production version exists."""


class RegistryConflict(RegistryError):
    """Another change was committed first; this one was rolled back and may be retried."""
