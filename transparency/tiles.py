"""The C2SP tlog-tiles layout: hash tiles `tile/<L>/<N>[.p/<W>]` (the hashes of level 8L's
nodes N*256 .. N*256+W-1) and entry bundles `tile/entries/<N>[.p/<W>]` (each entry as a 2-byte
big-endian length and its bytes). A full tile never changes, so it is served as immutable."""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass

HEIGHT = 8
WIDTH = 1 << HEIGHT  # 256 hashes or entries a full tile
_PATH = re.compile(r"^tile/(entries|\d+)/((?:x\d{3}/)*\d{3})(?:\.p/(\d{1,3}))?$")


class TileError(ValueError):
    """A tile path that is not in the layout, or a tile the tree does not have yet."""


@dataclass(frozen=True)
class Tile:
    level: int  # tile level; -1 for an entry bundle
    index: int
    width: int  # 256 for a full tile

    @property
    def full(self) -> bool:
        return self.width == WIDTH

    @property
    def path(self) -> str:
        digits = f"{self.index:03d}"
        digits = "0" * (-len(digits) % 3) + digits
        groups = [digits[i:i + 3] for i in range(0, len(digits), 3)]
        name = "/".join([*(f"x{g}" for g in groups[:-1]), groups[-1]])
        level = "entries" if self.level < 0 else str(self.level)
        return f"tile/{level}/{name}" + ("" if self.full else f".p/{self.width}")

    @property
    def node_level(self) -> int:
        """The tree level whose node hashes this tile holds."""
        return HEIGHT * self.level

    @property
    def first(self) -> int:
        return self.index * WIDTH

    @classmethod
    def parse(cls, path: str) -> Tile:
        match = _PATH.match(path)
        if match is None:
            raise TileError(f"{path!r} is not a tile path (tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>])")
        level_text, name, width_text = match.groups()
        width = WIDTH if width_text is None else int(width_text)
        if not 1 <= width < WIDTH and width_text is not None:
            raise TileError(f"{path!r}: a partial tile is 1 to 255 wide")
        level = -1 if level_text == "entries" else int(level_text)
        tile = cls(level, int(name.replace("x", "").replace("/", "")), width)
        if tile.path != path:  # one spelling per tile: leading zeros, x groups
            raise TileError(f"{path!r} is not the canonical path of its tile; use {tile.path!r}")
        return tile

    def within(self, size: int) -> None:
        """Raise TileError unless a tree of `size` leaves has this tile at this width (a
        partial tile of an older, smaller tree stays readable: it is a prefix of today's)."""
        nodes = size >> self.node_level if self.level >= 0 else size
        if self.first + self.width > nodes:
            raise TileError(f"the log of {size} entries has no tile {self.path}")


def bundle(entries: Iterable[bytes]) -> bytes:
    out = bytearray()
    for data in entries:
        if len(data) > 0xFFFF:
            raise TileError(f"an entry of {len(data)} bytes does not fit a tile's 2-byte length")
        out += struct.pack(">H", len(data)) + data
    return bytes(out)


def unbundle(data: bytes) -> list[bytes]:
    out, at = [], 0
    while at < len(data):
        if at + 2 > len(data):
            raise TileError("an entry bundle ends inside a length")
        (n,) = struct.unpack_from(">H", data, at)
        if at + 2 + n > len(data):
            raise TileError("an entry bundle ends inside an entry")
        out.append(data[at + 2:at + 2 + n])
        at += 2 + n
    return out
