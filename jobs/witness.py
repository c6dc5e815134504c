"""`python -m jobs.witness --log URL --state DIR [--once] [--name NAME] [--log-key VKEY]`: witness
a cryptocast log (`transparency.witness`): cosign each newer checkpoint the log proves consistent
with the last one cosigned, and hand the cosignature back to the log. Exits 1 naming a
truncation, a split view, a rewrite or a changed key. Prints its own vkey: give it to the log's
operator for LEDGER_WITNESSES."""

from __future__ import annotations

import argparse
import socket
import sys
import time
from pathlib import Path

import httpx

from transparency import keys
from transparency.witness import Refused, witness_once


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log", required=True, help="the log's base URL, e.g. https://cryptocast.example")
    parser.add_argument("--state", required=True, type=Path, help="the witness's own directory (key, last checkpoint)")
    parser.add_argument("--name", default=f"witness-{socket.gethostname()}", help="the witness key's name")
    parser.add_argument("--log-key", help="the log's vkey, pinned (default: trusted on first sight)")
    parser.add_argument("--once", action="store_true", help="look once and exit")
    parser.add_argument("--every", type=float, default=60.0, help="seconds between looks (default 60)")
    args = parser.parse_args(argv)
    print(f"[witness] vkey {keys.witness_signer(args.state, args.name).verifier.vkey}")
    with httpx.Client(base_url=args.log.rstrip("/"), timeout=30) as client:
        while True:
            try:
                done = witness_once(client, args.state, args.name, args.log_key)
            except Refused as exc:
                print(f"[witness] REFUSED: {exc}", file=sys.stderr)
                return 1
            except httpx.HTTPError as exc:
                print(f"[witness] the log at {args.log} could not be reached: {exc}", file=sys.stderr)
                if args.once:
                    return 2
            else:
                since = "first sight" if done.previous is None else f"extends {done.previous}"
                print(f"[witness] cosigned the checkpoint of size {done.size} ({since}); the log: {done.handed_back}")
            if args.once:
                return 0
            time.sleep(args.every)


if __name__ == "__main__":
    raise SystemExit(main())
