"""Why an entry operation did not happen."""

from __future__ import annotations


class RoundFailed(Exception):
    """A round that could not complete (quorum not met, ledger down, ...); nothing was appended."""


class Busy(Exception):
    """Training is already running (HTTP 409)."""


class AlgorithmRefused(Exception):
    """A ``/train`` algorithm that is neither built in nor the federation's own (HTTP 422)."""
