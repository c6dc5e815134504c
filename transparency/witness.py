"""A witness of the log: it keeps the last checkpoint it cosigned, and cosigns a newer one only
where the log proves the newer tree extends the older (RFC 9162 consistency). A log that shrank
(truncation), shows another root at the same size (split view) or cannot prove it extends what
was cosigned (a rewritten entry) is refused, by name. The cosigned checkpoint goes back to the
log (`POST /api/ledger/cosignature`), which serves it to everyone.

State, in the witness's own directory: `witness.key` (its cosignature key, made on first run),
`log.vkey` (the log's key, pinned on first sight unless given) and `checkpoint` (the last note
it cosigned), each written atomically."""

from __future__ import annotations

import base64
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transparency import keys, merkle
from transparency.note import Checkpoint, Note, NoteError, Verifier, cosign, read_checkpoint


class Refused(Exception):
    """The log showed something a witness must not cosign: the message names the attack."""


@dataclass(frozen=True)
class Cosigned:
    size: int
    previous: int | None
    handed_back: str  # what the log answered to the cosignature


def _write(path: Path, text: str) -> None:
    fd, aside = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(aside, path)


def _get(client: Any, path: str) -> Any:
    answer = client.get(path)
    if answer.status_code != 200:
        raise Refused(f"the log answered {answer.status_code} to {path}: {answer.text[:200]}")
    return answer


def _log_key(client: Any, state: Path, pinned: str | None) -> Verifier:
    stored = state / "log.vkey"
    shown = _get(client, "/api/ledger/key").json()["vkey"]
    known = pinned or (stored.read_text().strip() if stored.exists() else None)
    if known is not None and known != shown:
        raise Refused(f"key change: the log now signs with {shown}, not with the key this witness knows ({known})")
    if not stored.exists():
        _write(stored, shown + "\n")
    return Verifier.parse(shown)


def check_extends(client: Any, old: Checkpoint, new: Checkpoint) -> None:
    """Refused, naming the attack, unless `new` extends `old`."""
    if new.origin != old.origin:
        raise Refused(f"origin change: the log calls itself {new.origin!r}, not {old.origin!r}")
    if new.size < old.size:
        raise Refused(f"truncation: the log has {new.size} entries now, {old.size} when this witness cosigned it")
    if new.size == old.size:
        if new.root != old.root:
            raise Refused(f"split view: two checkpoints of size {new.size} with different roots "
                          f"({base64.b64encode(old.root).decode()} cosigned, {base64.b64encode(new.root).decode()} now)")
        return
    proof = _get(client, f"/api/ledger/proof/consistency?first={old.size}&second={new.size}").json()
    try:
        merkle.verify_consistency(old.size, new.size, old.root, new.root, [base64.b64decode(h) for h in proof["hashes"]])
    except (merkle.ProofError, ValueError) as exc:
        raise Refused(f"rewrite: the checkpoint of size {new.size} does not extend the cosigned one of size "
                      f"{old.size} (an entry among the first {old.size} was changed): {exc}") from None


def witness_once(client: Any, state: Path, name: str, log_key: str | None = None) -> Cosigned:
    """One look at the log through `client` (an httpx client on its base URL)."""
    state.mkdir(parents=True, exist_ok=True)
    signer = keys.witness_signer(state, name)
    log = _log_key(client, state, log_key)
    try:
        new, note = read_checkpoint(_get(client, "/api/ledger/checkpoint").text, log)
    except NoteError as exc:
        raise Refused(f"bad checkpoint: {exc}") from None
    saved = state / "checkpoint"
    previous = None
    if saved.exists():
        old = Checkpoint.parse(Note.parse(saved.read_text()).text)
        check_extends(client, old, new)
        previous = old.size
    ours = Note(note.text, (*[s for s in note.signatures if s.name == log.name],
                            cosign(signer, note.text, int(time.time()))))
    _write(saved, ours.render())
    answer = client.post("/api/ledger/cosignature", content=ours.render(), headers={"Content-Type": "text/plain"})
    handed = "accepted" if answer.status_code == 200 else f"not kept ({answer.status_code}: {answer.text[:200]})"
    return Cosigned(new.size, previous, handed)
