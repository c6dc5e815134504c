"""Load whichever forecaster an artifact folder holds: its `forecaster.json` names the kind."""

from __future__ import annotations

import json
from pathlib import Path

from training.ensemble import DirectForecaster
from training.forecaster import ARTIFACT_META, Forecaster

KINDS: dict[str, type[Forecaster] | type[DirectForecaster]] = {
    Forecaster.kind: Forecaster,
    DirectForecaster.kind: DirectForecaster,
}


def load_forecaster(folder: Path) -> Forecaster | DirectForecaster:
    try:
        kind = json.loads((folder / ARTIFACT_META).read_text()).get("kind")
    except (OSError, ValueError) as exc:
        raise ValueError(f"model artifact in {folder} is unreadable: {exc}") from exc
    if kind not in KINDS:
        raise ValueError(f"model artifact in {folder} is of unknown kind {kind!r}; known: {sorted(KINDS)}")
    return KINDS[kind].load(folder)
