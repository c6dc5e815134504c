"""An outsider's verifier of the transparency log, written from RFC 9162's definitions and the
C2SP note format with nothing of the service's code: the tree hash by its recursive definition,
proofs checked by rebuilding the roots they imply, signatures with `cryptography` directly."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mth(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 section 2.1.1."""
    if not leaves:
        return h(b"")
    if len(leaves) == 1:
        return h(b"\x00" + leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return h(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def root_from_inclusion(m: int, n: int, leaf_hash: bytes, path: list[bytes]) -> bytes:
    """The root PATH(m, D[n]) implies for the leaf (section 2.1.3.1, read backwards)."""
    if n == 1:
        if path:
            raise ValueError("the path is longer than the tree is deep")
        return leaf_hash
    if not path:
        raise ValueError("the path is shorter than the tree is deep")
    k, top = _k(n), path[-1]
    if m < k:
        return h(b"\x01" + root_from_inclusion(m, k, leaf_hash, path[:-1]) + top)
    return h(b"\x01" + top + root_from_inclusion(m - k, n - k, leaf_hash, path[:-1]))


def roots_from_consistency(m: int, n: int, old_root: bytes, proof: list[bytes]) -> tuple[bytes, bytes]:
    """The (old, new) roots SUBPROOF(m, D[n], true) implies (section 2.1.4.1, read backwards)."""
    def sub(m: int, n: int, whole_old: bool, proof: list[bytes]) -> tuple[bytes, bytes]:
        if m == n:
            if whole_old:
                if proof:
                    raise ValueError("the proof is too long")
                return old_root, old_root
            if len(proof) != 1:
                raise ValueError("the proof has the wrong length")
            return proof[0], proof[0]
        if not proof:
            raise ValueError("the proof is too short")
        k, top = _k(n), proof[-1]
        if m <= k:
            old, new = sub(m, k, whole_old, proof[:-1])
            return old, h(b"\x01" + new + top)
        old, new = sub(m - k, n - k, False, proof[:-1])
        return h(b"\x01" + top + old), h(b"\x01" + top + new)

    return sub(m, n, True, proof)


@dataclass(frozen=True)
class SignedCheckpoint:
    origin: str
    size: int
    root: bytes
    cosigners: tuple[str, ...]  # names on the other signature lines (not checked here)


def read_checkpoint(note: str, vkey: str) -> SignedCheckpoint:
    """A checkpoint note whose signature by `vkey` (name+hexid+base64(0x01||key)) verifies."""
    name, key_id_hex, key_b64 = vkey.split("+", 2)  # a name has no "+"; base64 may
    raw = base64.b64decode(key_b64)
    assert raw[0] == 1 and len(raw) == 33, "an Ed25519 note key"
    key_id = h(name.encode() + b"\n" + raw[:1] + raw[1:])[:4]
    assert key_id.hex() == key_id_hex
    body, _, signatures = note.partition("\n\n")
    body += "\n"
    signed, others = False, []
    for line in signatures.splitlines():
        dash, sig_name, blob_b64 = line.split(" ")
        assert dash == "\u2014"
        blob = base64.b64decode(blob_b64)
        if sig_name == name and blob[:4] == key_id:
            try:
                Ed25519PublicKey.from_public_bytes(raw[1:]).verify(blob[4:], body.encode())
                signed = True
            except InvalidSignature:
                pass
        else:
            others.append(sig_name)
    if not signed:
        raise ValueError("no signature of the log's key verifies")
    origin, size, root_b64, _ = body.split("\n", 3)
    return SignedCheckpoint(origin, int(size), base64.b64decode(root_b64), tuple(others))
