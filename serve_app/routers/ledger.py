"""The track record's ledger: its head, and any entry with what it hashed, so that anyone can
recompute the chain (`python -m jobs.verify_ledger` does it for the whole ledger)."""

from __future__ import annotations

from fastapi import APIRouter

from predictions import ledger
from predictions.errors import PredictionError
from serve_app.dependencies import Predictions
from serve_app.errors import ERRORS
from serve_app.schemas import LedgerEntryOut, LedgerHead

router = APIRouter(tags=["track record"], responses=ERRORS)


@router.get("/api/ledger/head", response_model=LedgerHead)
def ledger_head(service: Predictions) -> LedgerHead:
    """The newest entry: publish its hash, and any later rewrite of the ledger shows."""
    last = ledger.head(service.engine)
    if last is None:
        return LedgerHead(seq=0, hash=ledger.GENESIS, made_at=None)
    return LedgerHead(seq=last.seq, hash=last.hash, made_at=last.made_at)


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
