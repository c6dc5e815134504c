"""The public transparency log (RFC 9162, C2SP checkpoints and tiles): the signed checkpoint, the
log's key, inclusion and consistency proofs, static tiles, and witnesses' cosignatures. Anyone
holding one checkpoint can check every later one extends it, and any forecast is in it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response

from predictions.errors import PredictionError
from serve_app.dependencies import _log
from serve_app.errors import ERRORS
from serve_app.schemas import ConsistencyProof, CosignaturesAdded, InclusionProof, LedgerKey
from transparency.log import LogError, TransparencyLog, b64
from transparency.tiles import Tile, TileError

router = APIRouter(tags=["transparency log"], responses=ERRORS)
Log = Annotated[TransparencyLog, Depends(_log)]
IMMUTABLE = "public, max-age=31536000, immutable"
MAX_NOTE_BYTES = 16_384


@contextmanager
def _answered() -> Iterator[None]:
    """A request the log cannot answer, as the API's error."""
    try:
        yield
    except LogError as exc:
        raise PredictionError(exc.status, exc.code, exc.message) from None


@router.get("/api/ledger/checkpoint", response_class=PlainTextResponse, response_model=None)
def checkpoint(log: Log) -> PlainTextResponse:
    """The newest signed checkpoint (C2SP tlog-checkpoint) with its witnesses' cosignatures."""
    return PlainTextResponse(log.checkpoint(), headers={"Cache-Control": "no-cache"})


@router.get("/ledger/checkpoint", response_class=PlainTextResponse, response_model=None)
def tiles_checkpoint(log: Log) -> PlainTextResponse:
    """The checkpoint at the root of the tlog-tiles layout."""
    return checkpoint(log)


@router.get("/api/ledger/key", response_model=LedgerKey)
def key(log: Log) -> LedgerKey:
    verifier = log.signer.verifier
    return LedgerKey(name=verifier.name, vkey=verifier.vkey)


@router.get("/api/ledger/proof/inclusion", response_model=InclusionProof)
def inclusion(log: Log, index: Annotated[int, Query(ge=0)], tree_size: Annotated[int, Query(ge=1)]) -> InclusionProof:
    """That leaf `index` is in the tree of `tree_size` leaves (a checkpoint's size)."""
    with _answered():
        proof = log.inclusion(index, tree_size)
    assert proof.leaf_hash is not None
    return InclusionProof(index=index, tree_size=tree_size, leaf_hash=b64(proof.leaf_hash),
                          hashes=[b64(h) for h in proof.hashes])


@router.get("/api/ledger/proof/consistency", response_model=ConsistencyProof)
def consistency(log: Log, first: Annotated[int, Query(ge=1)], second: Annotated[int, Query(ge=1)]) -> ConsistencyProof:
    """That the tree of `second` leaves extends the tree of `first` leaves."""
    with _answered():
        proof = log.consistency(first, second)
    return ConsistencyProof(first=first, second=second, hashes=[b64(h) for h in proof.hashes])


@router.get("/ledger/tile/{path:path}", response_class=Response, response_model=None)
def tile(log: Log, path: str) -> Response:
    """A hash tile or entry bundle (C2SP tlog-tiles); a full one never changes."""
    try:
        found = Tile.parse("tile/" + path)
        data = log.tile(found)
    except TileError as exc:
        raise PredictionError(404, "unknown_tile", str(exc)) from None
    return Response(data, media_type="application/octet-stream",
                    headers={"Cache-Control": IMMUTABLE if found.full else "no-cache"})


@router.post("/api/ledger/cosignature", response_model=CosignaturesAdded)
async def cosignature(log: Log, request: Request) -> CosignaturesAdded:
    """A witness hands back a checkpoint of this log with its cosignature line (text/plain); kept
    where the line verifies under a witness key in LEDGER_WITNESSES, and served with the checkpoint."""
    body = await request.body()
    if len(body) > MAX_NOTE_BYTES:
        raise PredictionError(413, "too_large", f"a cosigned checkpoint is at most {MAX_NOTE_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PredictionError(400, "bad_checkpoint", "the body is not UTF-8 text") from None
    with _answered():
        return CosignaturesAdded(added=log.add_cosignature(text))
