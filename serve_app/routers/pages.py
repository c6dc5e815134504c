"""The web page and its static files."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
INDEX_HTML = STATIC_DIR / "index.html"
TRACK_RECORD_HTML = STATIC_DIR / "track-record.html"

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def page() -> HTMLResponse:
    """The web page: search, timeframe, the forecast on a candlestick chart."""
    return HTMLResponse(INDEX_HTML.read_text(encoding="utf-8"))


@router.get("/track-record", response_class=HTMLResponse)
def track_record_page() -> HTMLResponse:
    """The public track record: coverage and error against naive by horizon, reliability, the ledger."""
    return HTMLResponse(TRACK_RECORD_HTML.read_text(encoding="utf-8"))
