"""`python -m jobs.verify_ledger [--from SEQ] [--log-only] [--vkey VKEY]`: audit the public log
(every kept leaf hashed again, every tree node recomputed, the root checked against the newest
checkpoint signed by the log's key: `--vkey`, else the service's own) and recompute the track
record's hash chain from the stored forecasts; exit 1 naming the first entry or node that does
not verify (a changed close, band, time or model version; a deleted or reordered entry; a
rewritten tree). `--from` trusts the chain's entries before SEQ (a resumed check of a long
ledger); `--log-only` skips the chain. Prints its progress, then a summary with the head's hash
and the checkpoint's size, the values to compare with published ones."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from sqlalchemy.engine import Engine

from config import ConfigError
from engine.progress import Throttled
from jobs.cli import positive_int, setup
from predictions import ledger
from transparency import keys
from transparency.audit import Audit, audit
from transparency.note import NoteError, Verifier


def run(engine: Engine, start: int = 1, say: Callable[[str], None] = print) -> ledger.Verification:
    """Verify and say so (the weekly job calls this before it trains)."""
    started = time.perf_counter()
    progress = Throttled("[ledger]", say)  # every few seconds: how far, and about how long is left
    result = ledger.verify(engine, start, lambda checked, total: progress(checked, total, "entries verified"))
    seconds = time.perf_counter() - started
    if result.head is None:
        say("[ledger] empty: no forecast has been entered yet")
    elif result.ok:
        say(f"[ledger] {result.checked} entries verified from {start} to {result.head.seq} in {seconds:.1f}s "
            f"({result.checked / max(seconds, 1e-9):,.0f}/s); head {result.head.seq} {result.head.hash} "
            f"made {result.head.made_at:%Y-%m-%d %H:%M:%S} UTC")
    else:
        say(f"[ledger] DOES NOT VERIFY: {result.failure} ({result.checked} entries before it verified)")
    return result


def audit_log(engine: Engine, key: Verifier, say: Callable[[str], None] = print) -> Audit:
    started = time.perf_counter()
    progress = Throttled("[log]", say)
    result = audit(engine, key, lambda done, total: progress(done, total, "leaves hashed"))
    seconds = time.perf_counter() - started
    if not result.ok:
        say(f"[log] DOES NOT VERIFY: {result.failure}")
    else:
        signed = ("no checkpoint signed yet" if result.checkpoint_size is None
                  else f"the checkpoint of size {result.checkpoint_size} signed by {key.name} matches")
        say(f"[log] {result.leaves} leaves and {result.nodes} nodes recomputed in {seconds:.1f}s "
            f"({result.leaves / max(seconds, 1e-9):,.0f} leaves/s); {signed}")
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--from", dest="start", type=positive_int, default=1, metavar="SEQ",
                   help="first entry to check; the ones before it are trusted (default 1)")
    p.add_argument("--log-only", action="store_true", help="audit the public log, not the hash chain")
    p.add_argument("--vkey", help="the log's key (default: this service's, from LEDGER_SIGNING_KEY or the state dir)")
    args = p.parse_args(argv)
    settings, engine = setup()
    try:
        key = Verifier.parse(args.vkey) if args.vkey else keys.log_signer(settings.ledger, settings.serve_state_dir).verifier
    except NoteError as exc:
        raise SystemExit(f"--vkey: {exc}") from None
    except ConfigError as exc:
        raise SystemExit(f"configuration error: {exc}") from None
    ok = audit_log(engine, key).ok
    if not args.log_only:
        ok = run(engine, args.start).ok and ok
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
