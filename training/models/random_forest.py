"""Direct random forest: scikit-learn's multi-output forest predicts all 30 horizons at once.

Fitted in a Ray task that takes the CPUs it uses (or in this process without Ray). Saved with
skops, whose loader refuses any type not on an explicit list, so an artifact cannot smuggle code
in the way a pickle can.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio
from sklearn.ensemble import RandomForestRegressor

import engine.train as engine
from engine.layout import RunOptions
from features.build import feature_names
from training.models.direct_rows import DirectRows

RF_PARAMS: dict[str, Any] = {
    "n_estimators": 100,
    "max_depth": 10,
    "min_samples_leaf": 50,  # leaves average at least 50 origins: noisy targets need it
    "max_features": 0.3,
    "max_rows_per_tree": 50_000,  # bootstrap sample size cap: trees stay fast on big universes
}
MODEL_FILE = "rf.skops"
META_FILE = "rf.json"
# What a forest holds beyond the types skops trusts by default; anything else is refused on load.
TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


def _fit(x: np.ndarray, y: np.ndarray, params: dict[str, Any], n_jobs: int = -1) -> RandomForestRegressor:
    model = RandomForestRegressor(
        n_estimators=int(params["n_estimators"]), max_depth=int(params["max_depth"]),
        min_samples_leaf=int(params["min_samples_leaf"]), max_features=float(params["max_features"]),
        max_samples=min(1.0, int(params["max_rows_per_tree"]) / max(1, len(x))), n_jobs=n_jobs, random_state=0,
    )
    return model.fit(x, y)


class RFDirect:
    name = "rf"
    default_params = RF_PARAMS

    def __init__(self, model: RandomForestRegressor, features: list[str], info: dict[str, Any] | None = None) -> None:
        self.model = model
        self.features = list(features)
        self.info = dict(info or {})
        self.model.n_jobs = 1

    @classmethod
    def input_features(cls, timeframe: str) -> list[str]:
        return feature_names(timeframe)

    @classmethod
    def fit(cls, train: DirectRows, valid: DirectRows, features: list[str], params: dict[str, Any] | None,
            run: RunOptions) -> RFDirect:
        """A forest has no early stopping: `valid` is not used."""
        params = {**RF_PARAMS, **(params or {})}
        model = engine.call(run, _fit, train.x, train.y, params)
        return cls(model, features, {"params": params, "rows": len(train)})

    def refit(self, rows: DirectRows, run: RunOptions) -> RFDirect:
        """The same forest on more rows (a forest chooses nothing on validation)."""
        params = self.info["params"]
        model = engine.call(run, _fit, rows.x, rows.y, params)
        return RFDirect(model, self.features, {**self.info, "rows": len(rows), "refit": {"rows": len(rows)}})

    def summary(self) -> str:
        return f"{self.model.n_estimators} trees, 30 outputs"

    def predict(self, x: np.ndarray, seq: np.ndarray) -> np.ndarray:
        return self.model.predict(x.astype(np.float32, copy=False))

    def save(self, folder: Path) -> None:
        sio.dump(self.model, folder / MODEL_FILE)
        (folder / META_FILE).write_text(json.dumps({"features": self.features, "info": self.info}))

    @classmethod
    def load(cls, folder: Path) -> RFDirect:
        path = folder / MODEL_FILE
        unexpected = sorted(set(sio.get_untrusted_types(file=path)) - set(TRUSTED_TYPES))
        if unexpected:
            raise ValueError(f"{path} holds types a random forest does not: {unexpected}; refusing to load it")
        model = sio.load(path, trusted=TRUSTED_TYPES)
        if not isinstance(model, RandomForestRegressor):
            raise ValueError(f"{path} holds a {type(model).__name__}, not a RandomForestRegressor")
        meta = json.loads((folder / META_FILE).read_text())
        return cls(model, meta["features"], meta.get("info"))
