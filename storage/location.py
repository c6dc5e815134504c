"""Where the lake and the models live: a local folder, or any pyarrow filesystem URI
(`s3://bucket/prefix`, `gs://…`, `abfs://…`, with pyarrow's query options such as
`?endpoint_override=host:port&scheme=http` for an S3-compatible store), so that every node of a
cluster sees the same files without a shared mount.

Local folders keep their POSIX guarantees (atomic rename); on object stores a single object PUT
is atomic by itself (an object appears whole or not at all), which is what writers rely on there.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pyarrow.fs as pafs


def is_remote(location: str | Path) -> bool:
    """True for a URI with a scheme other than file:// (a Windows drive letter is not a scheme)."""
    scheme = urlsplit(str(location)).scheme
    return len(scheme) > 1 and scheme != "file"


def join(location: str | Path, *parts: str) -> str:
    """`location` / parts, for local paths and URIs alike (a URI's query string stays at the end)."""
    if not is_remote(location):
        return str(Path(location).joinpath(*parts))
    split = urlsplit(str(location))
    path = "/".join([split.path.rstrip("/"), *(p.strip("/") for p in parts)])
    return urlunsplit((split.scheme, split.netloc, path, split.query, split.fragment))


@dataclass(frozen=True)
class Location:
    """A filesystem and a path on it: what pyarrow's readers and writers take."""

    fs: pafs.FileSystem
    path: str
    remote: bool

    @classmethod
    def of(cls, location: str | Path) -> Location:
        if is_remote(location):
            try:
                fs, path = pafs.FileSystem.from_uri(str(location))
            except Exception as exc:  # pyarrow raises ArrowInvalid/OSError for bad URIs
                raise ValueError(f"cannot open storage location {location!r}: {exc}") from exc
            return cls(fs, path.rstrip("/"), True)
        return cls(pafs.LocalFileSystem(), str(Path(location).resolve()), False)

    def child(self, *parts: str) -> str:
        return "/".join([self.path, *(p.strip("/") for p in parts)])

    def is_file(self, path: str) -> bool:
        return self.fs.get_file_info(path).type == pafs.FileType.File

    def read_bytes(self, path: str) -> bytes:
        with self.fs.open_input_stream(path) as handle:
            return handle.read()

    def write_bytes(self, path: str, data: bytes) -> None:
        """Atomically: one object PUT on an object store; locally a temporary file and a rename."""
        if self.remote:
            with self.fs.open_output_stream(path) as handle:
                handle.write(data)
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def files(self, path: str) -> list[str]:
        """Paths of the files under `path`, relative to it; empty when it does not exist."""
        info = self.fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
        return sorted(i.path[len(path.rstrip("/")) + 1:] for i in info if i.type == pafs.FileType.File)

    def dirs(self, path: str) -> list[str]:
        info = self.fs.get_file_info(pafs.FileSelector(path, recursive=False, allow_not_found=True))
        return sorted(i.base_name for i in info if i.type == pafs.FileType.Directory)
