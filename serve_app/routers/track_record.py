"""The track record: the ledger (its head, any entry with what it hashed, so that anyone can
recompute the chain; `python -m jobs.verify_ledger` does it for the whole ledger) and how its
forecasts fared against what happened."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from accuracy.report import MAX_DAYS, AccuracyError
from accuracy.track_record import MIN_N, HorizonRecord, ledger_steps, summarise
from predictions import ledger
from predictions.errors import PredictionError
from serve_app.dependencies import Predictions
from serve_app.errors import ERRORS
from serve_app.schemas import (
    Interval,
    LedgerEntryOut,
    LedgerHead,
    ReliabilityBin,
    Timeframe,
    TrackHorizon,
    TrackRecordResponse,
    TrackVersion,
)

router = APIRouter(tags=["track record"], responses=ERRORS)


def _head(service: Predictions) -> LedgerHead:
    last = ledger.head(service.engine)
    if last is None:
        return LedgerHead(seq=0, hash=ledger.GENESIS, made_at=None)
    return LedgerHead(seq=last.seq, hash=last.hash, made_at=last.made_at)


@router.get("/api/ledger/head", response_model=LedgerHead)
def ledger_head(service: Predictions) -> LedgerHead:
    """The newest entry: publish its hash, and any later rewrite of the ledger shows."""
    return _head(service)


@router.get("/api/ledger/{seq}", response_model=LedgerEntryOut)
def ledger_entry(service: Predictions, seq: int) -> LedgerEntryOut:
    """Entry `seq` and the canonical JSON of its forecast: sha256(canonical_json + prev_hash) = hash."""
    if seq < 1:
        raise PredictionError(400, "bad_seq", f"ledger entries are numbered from 1, got {seq}")
    found = ledger.entry(service.engine, seq)
    if found is None:
        raise PredictionError(404, "unknown_entry", f"no ledger entry {seq}; the head is at /api/ledger/head")
    e, canonical = found
    verifies = canonical is not None and ledger.chain_hash(canonical, e.prev_hash) == e.hash
    return LedgerEntryOut(seq=e.seq, prediction_id=str(e.prediction_id), made_at=e.made_at, prev_hash=e.prev_hash,
                          hash=e.hash, canonical_json=canonical, verifies=verifies)


def _interval(value: tuple[float, float, float] | None) -> Interval | None:
    return None if value is None else Interval(value=value[0], low=value[1], high=value[2])


def _horizon_out(h: HorizonRecord) -> TrackHorizon:
    dm = h.diebold_mariano
    return TrackHorizon(horizon=h.horizon, n=h.n, status=h.status, mae_ratio=_interval(h.mae_ratio),
                        dm_statistic=None if dm is None else dm[0], dm_p_value=None if dm is None else dm[1],
                        directional_accuracy=h.directional_accuracy, called=h.called,
                        coverage_80=_interval(h.coverage_80), interval_score=h.interval_score,
                        interval_score_ratio=_interval(h.interval_score_ratio), crps=h.crps,
                        pit_histogram=h.pit_histogram)


@router.get("/api/track-record", response_model=TrackRecordResponse)
def track_record(service: Predictions, timeframe: Timeframe = "1d", days: int = 90) -> TrackRecordResponse:
    """How the ledger's forecasts of `timeframe` made in the last `days` fared, per model version
    and horizon, against naive: MAE ratio and coverage with block-bootstrap intervals, a
    Diebold-Mariano test, directional accuracy and the band's interval score against naive's band.
    A horizon with fewer than `min_n` scored forecasts says "not enough data yet"."""
    if not 1 <= days <= MAX_DAYS:
        raise AccuracyError(400, "bad_days", f"days must be between 1 and {MAX_DAYS}, got {days}")
    since = service.clock() - timedelta(days=days)
    versions = summarise(ledger_steps(service.engine, timeframe, since), timeframe)
    return TrackRecordResponse(
        timeframe=timeframe, days=days, since=since, min_n=MIN_N, ledger_head=_head(service),
        versions=[TrackVersion(model_version=v.model_version, forecasts=v.forecasts,
                               horizons=[_horizon_out(h) for h in v.horizons],
                               reliability=[ReliabilityBin.model_validate(r) for r in v.reliability.to_dict("records")])
                  for v in versions])
