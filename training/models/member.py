"""What every direct model offers the ensembles (`Member`), and the one registry of members:
`MEMBER_KINDS`, each name with the module and class that implement it. A class is imported only
when it is asked for (`member_class`), so that a process serving a single-member artifact imports
that member's library alone (never PyTorch for an XGBoost one); `MEMBERS` is the same registry
as classes, for training (`training.candidates`). Adding a direct model is one module and one
line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from engine.layout import RunOptions
from training.models.direct_rows import DirectRows

# member name (as saved in an ensemble's weights) -> "module:class"
MEMBER_KINDS: dict[str, str] = {
    "xgb_direct": "training.models.direct_xgb:XGBDirect",
    "rf": "training.models.random_forest:RFDirect",
    "lstm": "training.models.lstm:LSTMDirect",
}


class Member(Protocol):
    """What every direct model offers: fit on direct rows (early stopping on `valid` where the
    model has it), refit on more rows as validation chose, the 30 z targets of many origins, a
    one-line summary of the fit, its files."""

    name: str
    default_params: dict[str, Any]  # what `fit` uses where the spec says nothing
    info: dict[str, Any]

    @classmethod
    def input_features(cls, timeframe: str) -> list[str]: ...

    @classmethod
    def fit(cls, train: DirectRows, valid: DirectRows, features: list[str], params: dict[str, Any],
            run: RunOptions) -> Member: ...

    def refit(self, rows: DirectRows, run: RunOptions) -> Member:
        """The same model fitted again on `rows` (train, purge gap and validation) with the
        capacity validation chose (rounds, trees, epochs) and no early stopping: validation is
        training data now and cannot judge. What is deployed."""
        ...

    def predict(self, x: np.ndarray, seq: np.ndarray) -> np.ndarray: ...  # (origins, 30) z

    def summary(self) -> str: ...

    def save(self, folder: Path) -> None: ...

    @classmethod
    def load(cls, folder: Path) -> Member: ...


def member_class(name: str) -> type[Member]:
    module, cls = MEMBER_KINDS[name].split(":")
    kind: type[Member] = getattr(importlib.import_module(module), cls)
    return kind


def load_member(name: str, folder: Path) -> Member:
    return member_class(name).load(folder)


class _Classes(Mapping[str, type[Member]]):
    """`MEMBER_KINDS` as classes, each imported when it is first asked for."""

    def __getitem__(self, name: str) -> type[Member]:
        return member_class(name)

    def __iter__(self) -> Iterator[str]:
        return iter(MEMBER_KINDS)

    def __len__(self) -> int:
        return len(MEMBER_KINDS)


MEMBERS: Mapping[str, type[Member]] = _Classes()
