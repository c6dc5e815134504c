"""The one registry of models: every candidate `auto` chooses among, and what `--model` names.

A family of candidates is an `Estimator` (`training.estimator`); the direct models are members
the ensembles combine (`training.models.member.Member`). Adding a model is one module under
`training/models/` and one line here: a member in `MEMBERS` (it is then a candidate alone and a
member of the fitted ensemble), or a family in `ESTIMATORS`. docs/architecture.md shows it.
"""

from __future__ import annotations

from typing import Any

from training.estimator import Estimator
from training.models.direct import DirectModels
from training.models.direct_xgb import XGBDirect
from training.models.lstm import LSTMDirect
from training.models.member import Member
from training.models.random_forest import RFDirect
from training.models.recursive import RecursiveXGB

MEMBERS: dict[str, type[Member]] = {
    "xgb_direct": XGBDirect,
    "rf": RFDirect,
    "lstm": LSTMDirect,
}
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
