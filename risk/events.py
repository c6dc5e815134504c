"""The probabilities a trader acts on, from one forecast's distribution: the close of a step above
a level (`p_above`, from that step's quantiles alone), the price touching a level within some
steps (`p_touch`), and which of a target and a stop the price reaches first (`first_of`): the
last two from paths consistent with every step's distribution (`risk.paths`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from risk.distribution import cdf
from risk.paths import Paths, crossing, simulate


@dataclass(frozen=True)
class Outlook:
    """One forecast's distribution: `table` (steps x levels) the close's quantiles in prices,
    `last_close` the price it starts from."""

    last_close: float
    table: np.ndarray

    @property
    def steps(self) -> int:
        return len(self.table)

    def moves(self) -> np.ndarray:
        """(steps x levels) the quantiles as log returns from the last close."""
        return np.log(self.table / self.last_close)

    def _level(self, price: float) -> float:
        if not price > 0:
            raise ValueError(f"a price level must be above 0, got {price}")
        return float(np.log(price / self.last_close))

    def _within(self, steps: int) -> int:
        if not 1 <= steps <= self.steps:
            raise ValueError(f"the forecast has steps 1 to {self.steps}, not {steps}")
        return steps

    def p_above(self, price: float, step: int) -> float:
        """P(the close of `step` is above `price`)."""
        x, h = self._level(price), self._within(step)
        return float(1.0 - cdf(self.moves()[h - 1], np.asarray(x)))

    def p_touch(self, price: float, within: int, paths: Paths | None = None) -> float:
        """P(the price reaches `price` at any moment of the first `within` steps): at least the
        chance that some step's close is beyond it (the paths agree up to sampling error; the
        bound removes that error where it would break the order)."""
        x, h = self._level(price), self._within(within)
        if x == 0.0:
            return 1.0
        paths = paths or simulate(self.moves())
        stay = np.prod(1.0 - crossing(paths, x, paths.upto(h)), axis=1)
        beyond = 1.0 - cdf(self.moves()[:h], np.full(h, x))
        closes_beyond = float((beyond if x > 0 else 1.0 - beyond).max())
        return float(np.clip(max(1.0 - stay.mean(), closes_beyond), 0.0, 1.0))

    def first_of(self, target: float, stop: float, within: int | None = None,
                 paths: Paths | None = None) -> tuple[float, float, float]:
        """(p_target_first, p_stop_first, p_neither) over the first `within` steps (all of them by
        default); they sum to 1. Where both are crossed between the same two grid moments, each
        gets half of that chance."""
        t, s, h = self._level(target), self._level(stop), self._within(within or self.steps)
        if t == s:
            raise ValueError("the target and the stop are the same price")
        paths = paths or simulate(self.moves())
        n = paths.upto(h)
        pt, ps = crossing(paths, t, n), crossing(paths, s, n)
        if t == 0.0 or s == 0.0:  # a level at the price is reached at once
            at_once = 1.0 if t == 0.0 else 0.0
            return at_once, 1.0 - at_once, 0.0
        survive = np.cumprod((1.0 - pt) * (1.0 - ps), axis=1)
        before = np.hstack([np.ones((len(survive), 1)), survive[:, :-1]])
        target_first = float((before * pt * (1.0 - ps / 2)).sum(axis=1).mean())
        stop_first = float((before * ps * (1.0 - pt / 2)).sum(axis=1).mean())
        neither = float(survive[:, -1].mean())
        total = target_first + stop_first + neither  # 1 up to rounding
        return target_first / total, stop_first / total, neither / total
