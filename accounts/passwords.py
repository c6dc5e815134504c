"""Password rules and argon2id hashing (argon2-cffi's RFC 9106 defaults).

The rules follow NIST SP 800-63B: a length range and nothing else (no composition rules, which
push users to predictable patterns). The upper bound keeps a 10,000-character "password" from
costing the server a hash of it.
"""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from accounts.errors import AccountError

MIN_LENGTH = 8
MAX_LENGTH = 128

_hasher = PasswordHasher()


def check_rules(password: str) -> None:
    """Raise a 422 that says which rule a new password breaks."""
    if len(password) < MIN_LENGTH:
        raise AccountError(422, "weak_password", f"the password must be at least {MIN_LENGTH} characters long")
    if len(password) > MAX_LENGTH:
        raise AccountError(422, "invalid_password", f"the password must be at most {MAX_LENGTH} characters long")
    if not password.strip():
        raise AccountError(422, "weak_password", "the password must not be only spaces")
    if "\x00" in password:
        raise AccountError(422, "invalid_password", "the password must not contain a NUL character")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash("not the password of anyone")


def burn_verification(password: str) -> None:
    """Spend the time of one verification, so that an unknown email answers as slowly as a
    wrong password and login timing does not tell which emails have accounts."""
    verify_password(_dummy_hash(), password)
