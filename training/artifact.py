"""Load whichever forecaster an artifact folder holds: its `forecaster.json` names the kind.

Kinds are imported only when an artifact of theirs is loaded, so that a process that serves the
recursive model (or only reads the registry, like the API ingress) never imports PyTorch.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from training.forecaster import ARTIFACT_META, ForecastModel

# kind (as saved in forecaster.json) -> "module:class"
KINDS: dict[str, str] = {
    "xgboost-recursive": "training.models.recursive_forecaster:RecursiveForecaster",
    "direct-ensemble": "training.models.ensemble:DirectForecaster",
}


def load_forecaster(folder: Path) -> ForecastModel:
    try:
        kind = json.loads((folder / ARTIFACT_META).read_text()).get("kind")
    except (OSError, ValueError) as exc:
        raise ValueError(f"model artifact in {folder} is unreadable: {exc}") from exc
    if kind not in KINDS:
        raise ValueError(f"model artifact in {folder} is of unknown kind {kind!r}; known: {sorted(KINDS)}")
    module, name = KINDS[kind].split(":")
    model: ForecastModel = getattr(importlib.import_module(module), name).load(folder)
    return model
