"""How many live sockets one client address and one signed-in user may hold at once: a page
needs one, a few tabs a few; hundreds from one address are a leak or an abuse, and each costs
memory and a share of every tick."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from refusals import Refusal


class TooManySockets(Refusal):
    pass


@dataclass(frozen=True)
class Holder:
    """Who holds a socket: always an address; a user when signed in."""

    address: str
    user: str | None = None

    def keys(self) -> tuple[str, ...]:
        return (f"address:{self.address}",) + ((f"user:{self.user}",) if self.user else ())


class Admission:
    def __init__(self, max_sockets: int) -> None:
        self.max_sockets = max_sockets
        self._held: Counter[str] = Counter()

    def admit(self, holder: Holder) -> None:
        """Count the socket in, or refuse it naming the limit (nothing counted then)."""
        for key in holder.keys():
            if self._held[key] >= self.max_sockets:
                who = "your account" if key.startswith("user:") else "your address"
                raise TooManySockets(429, "too_many_sockets",
                                     f"{who} already has {self.max_sockets} live connections open; close one first")
        self._held.update(holder.keys())

    def release(self, holder: Holder) -> None:
        self._held.subtract(holder.keys())
        for key in holder.keys():
            if self._held[key] <= 0:
                del self._held[key]
