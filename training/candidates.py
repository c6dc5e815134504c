"""The one registry of models: every candidate `auto` chooses among, and what `--model` names.

A family of candidates is an `Estimator` (`training.estimator`); the direct models are members
the ensembles combine (`training.models.member`, whose `MEMBER_KINDS` is their one registry).
Adding a model is one module under `training/models/` and one line: a member in `MEMBER_KINDS`
(it is then a candidate alone, a member of the fitted ensemble and loadable from an artifact), or
a family in `ESTIMATORS` here. docs/architecture.md shows it.
"""

from __future__ import annotations

from typing import Any

from training.estimator import Estimator
from training.models.direct import DirectModels
from training.models.member import MEMBERS
from training.models.recursive import RecursiveXGB

DIRECT = DirectModels(MEMBERS)
ESTIMATORS: tuple[Estimator, ...] = (
    RecursiveXGB(),
    DIRECT,
)

AUTO = "auto"  # every usable candidate, and the one validation proves best (naive included)


def model_names() -> tuple[str, ...]:
    """What `--model` accepts: `auto` and every candidate of the registry."""
    return (AUTO, *(name for estimator in ESTIMATORS for name in estimator.names))


def default_direct_params() -> dict[str, dict[str, Any]]:
    """Each member's own parameters (a job's `--direct-params` overrides them)."""
    return DIRECT.default_params()
