"""The log's signing key: `LEDGER_SIGNING_KEY` (base64 of the 32-byte Ed25519 seed) where it is
set, else `ledger-signing.key` in the state directory, generated on first start. Created
atomically (written aside, then linked into place), so replicas starting together agree on one."""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from config import ConfigError, LedgerSettings
from transparency.note import COSIGNATURE_V1, ED25519, NoteError, Signer

KEY_FILE = "ledger-signing.key"


class SigningKeyError(ValueError):
    """A key that cannot be read: names the variable or file and what is wrong."""


def from_text(text: str, name: str, where: str, key_type: int = ED25519) -> Signer:
    try:
        return Signer.from_seed(name, base64.b64decode(text.strip(), validate=True), key_type)
    except (binascii.Error, NoteError) as exc:
        raise SigningKeyError(f"{where} is not base64 of a 32-byte Ed25519 private key ({exc})") from None


def seed_text(signer: Signer) -> str:
    raw = signer.key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(raw).decode() + "\n"


def load_or_create(path: Path, name: str, key_type: int = ED25519) -> Signer:
    """The key in `path`, generated there (mode 0600) if the file does not exist yet."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = Signer.generate(name, key_type)
        fd, aside = tempfile.mkstemp(dir=path.parent, prefix=".key-")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(seed_text(fresh))
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(aside, path)  # fails where another process linked its key first: use that one
            except FileExistsError:
                pass
        finally:
            os.unlink(aside)
    return from_text(path.read_text(), name, str(path), key_type)


def log_signer(settings: LedgerSettings, state_dir: str) -> Signer:
    """The service's log key; ConfigError naming LEDGER_SIGNING_KEY or the key file where it is unreadable."""
    try:
        if settings.signing_key:
            return from_text(settings.signing_key.get_secret_value(), settings.origin, "LEDGER_SIGNING_KEY")
        return load_or_create(Path(state_dir) / KEY_FILE, settings.origin)
    except SigningKeyError as exc:
        raise ConfigError(str(exc)) from None


def witness_signer(state_dir: Path, name: str) -> Signer:
    return load_or_create(state_dir / "witness.key", name, COSIGNATURE_V1)
