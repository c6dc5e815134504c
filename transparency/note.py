"""C2SP signed notes (`signed-note`), checkpoints (`tlog-checkpoint`) and witness cosignatures
(`tlog-cosignature`, cosignature/v1), with Ed25519 keys from `cryptography`.

A note is its text, a blank line, then one line per signature: `— <key name> <base64(key id ||
signature)>`. A key id is the first 4 bytes of SHA-256(name || 0x0A || type || public key):
type 0x01 for a log's Ed25519 key, 0x04 for a witness's cosignature key."""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

DASH = "\u2014"  # the em dash that starts a signature line
ED25519, COSIGNATURE_V1 = 0x01, 0x04  # key types


class NoteError(ValueError):
    """A note, checkpoint, key or signature that cannot be read or does not verify."""


def key_id(name: str, key_type: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([key_type]) + public).digest()[:4]


@dataclass(frozen=True)
class Verifier:
    """A public key by name: `<name>+<hex key id>+<base64(type || key)>` is its vkey."""

    name: str
    key_type: int
    public: bytes

    @property
    def id(self) -> bytes:
        return key_id(self.name, self.key_type, self.public)

    @property
    def vkey(self) -> str:
        return f"{self.name}+{self.id.hex()}+{base64.b64encode(bytes([self.key_type]) + self.public).decode()}"

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        name, _, rest = vkey.strip().partition("+")  # a name has no "+"; the base64 key may
        hex_id, _, rest = rest.partition("+")
        try:
            raw = base64.b64decode(rest, validate=True)
        except ValueError:
            raw = b""
        if not name or len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
            raise NoteError(f"{vkey!r} is not a verifier key (<name>+<key id>+<base64 key>)")
        verifier = cls(name, raw[0], raw[1:])
        if verifier.id.hex() != hex_id.lower():
            raise NoteError(f"{vkey!r}: the key id does not match the name and key")
        return verifier

    def check(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """A private Ed25519 key and the name it signs under."""

    name: str
    key: Ed25519PrivateKey
    key_type: int = ED25519

    @classmethod
    def generate(cls, name: str, key_type: int = ED25519) -> Signer:
        return cls(name, Ed25519PrivateKey.generate(), key_type)

    @classmethod
    def from_seed(cls, name: str, seed: bytes, key_type: int = ED25519) -> Signer:
        if len(seed) != 32:
            raise NoteError(f"an Ed25519 private key is 32 bytes, got {len(seed)}")
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed), key_type)

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.key_type, self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def signature_line(self, message: bytes, prefix: bytes = b"") -> str:
        """`prefix` goes between the key id and the signature (a cosignature's timestamp)."""
        blob = self.verifier.id + prefix + self.key.sign(message)
        return f"{DASH} {self.name} {base64.b64encode(blob).decode()}\n"


@dataclass(frozen=True)
class Signature:
    name: str
    blob: bytes  # key id || (cosignature: 8-byte time ||) signature

    @property
    def line(self) -> str:
        return f"{DASH} {self.name} {base64.b64encode(self.blob).decode()}\n"


@dataclass(frozen=True)
class Note:
    text: str  # what is signed: every line ends with a newline
    signatures: tuple[Signature, ...]

    @classmethod
    def parse(cls, note: str) -> Note:
        text, sep, lines = note.partition("\n\n")
        if not sep or not text:
            raise NoteError("a signed note is its text, a blank line, then signature lines")
        signatures = []
        for line in lines.split("\n"):
            if not line:
                continue
            dash, _, rest = line.partition(" ")
            name, _, blob = rest.rpartition(" ")
            try:
                raw = base64.b64decode(blob, validate=True)
            except ValueError:
                raw = b""
            if dash != DASH or not name or len(raw) < 4:
                raise NoteError(f"not a signature line: {line!r}")
            signatures.append(Signature(name, raw))
        return cls(text + "\n", tuple(signatures))

    def render(self) -> str:
        return self.text + "\n" + "".join(s.line for s in self.signatures)

    def signed_by(self, verifier: Verifier) -> bool:
        """Whether a signature of this note verifies under `verifier` (an Ed25519 note key)."""
        return any(s.name == verifier.name and s.blob[:4] == verifier.id and len(s.blob) == 68
                   and verifier.check(self.text.encode(), s.blob[4:]) for s in self.signatures)

    def cosigned_at(self, verifier: Verifier) -> int | None:
        """The time of `verifier`'s valid cosignature/v1 of this note, or None."""
        for s in self.signatures:
            if s.name == verifier.name and s.blob[:4] == verifier.id and len(s.blob) == 76:
                (when,) = struct.unpack(">Q", s.blob[4:12])
                if verifier.check(cosigned_message(self.text, when), s.blob[12:]):
                    return int(when)
        return None


def cosigned_message(text: str, when: int) -> bytes:
    return f"cosignature/v1\ntime {when}\n".encode() + text.encode()


def cosign(signer: Signer, text: str, when: int) -> Signature:
    line = signer.signature_line(cosigned_message(text, when), struct.pack(">Q", when))
    return Note.parse(text + "\n" + line).signatures[0]


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    @property
    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        try:
            origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2], validate=True)
        except (IndexError, ValueError):
            raise NoteError("a checkpoint is <origin>\\n<tree size>\\n<base64 root>\\n") from None
        if not origin or not 0 <= size < 2**63 or len(root) != 32:
            raise NoteError("a checkpoint is <origin>\\n<tree size>\\n<base64 root>\\n")
        return cls(origin, size, root)

    def sign(self, signer: Signer) -> Note:
        text = self.text
        return Note.parse(text + "\n" + signer.signature_line(text.encode()))


def read_checkpoint(note_text: str, log: Verifier) -> tuple[Checkpoint, Note]:
    """A checkpoint note that `log` signed, or NoteError saying why not."""
    note = Note.parse(note_text)
    if not note.signed_by(log):
        raise NoteError(f"the checkpoint is not signed by the log's key {log.name}")
    return Checkpoint.parse(note.text), note
