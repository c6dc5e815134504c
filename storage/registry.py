"""The model registry: artifacts under `MODEL_DIR/<timeframe>/<version>/` plus their `models` row.

`MODEL_DIR` is a local folder or a pyarrow filesystem URI (`s3://bucket/models`): remotely the
files are uploaded one object each with the manifest last, and `open_artifact` downloads a
verified copy into a local cache before any loader reads it.

An artifact is a folder of files written by the model itself in a safe format (XGBoost UBJ/JSON,
torch state_dict, skops), with a `manifest.json` of SHA-256 digests. Loading checks the digests,
so a file changed after registration is refused instead of being fed to a model loader.
At most one model per timeframe is active: the database enforces it with a partial unique
index, and `activate` switches in one transaction so readers never see zero or two.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from clock import naive_utc
from market_data.timeframes import TIMEFRAMES
from storage.db import session_scope
from storage.location import Location, is_remote, join
from storage.schema import ModelRecord

MANIFEST = "manifest.json"
_VERSION_RE = re.compile(r"^v(\d+)\.0$")


class ArtifactError(RuntimeError):
    """A model artifact is missing, incomplete or altered since it was registered."""


@dataclass(frozen=True)
class TrainingInfo:
    """What the `models` row records about how a model was trained."""

    training_start: datetime
    training_end: datetime
    num_symbols: int
    top_symbols: Sequence[str]
    feature_count: int | None
    accuracy_avg: float | None
    trained_at: datetime


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _stage(staging: Path, write_artifact: Callable[[Path], None], what: str) -> dict[str, str]:
    """Let the model write its files into `staging`; their SHA-256 digests by relative path."""
    write_artifact(staging)
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    if not files:
        raise ArtifactError(f"{what} wrote no files")
    return {str(p.relative_to(staging)): _digest(p) for p in files}


def _manifest_text(manifest: dict[str, str]) -> str:
    return json.dumps({"files": manifest}, indent=1, sort_keys=True)


def _check_files(what: str, present: set[str], expected: dict[str, str], where: str) -> None:
    """The artifact holds exactly the files its manifest lists: none missing, none added."""
    if present != set(expected):
        raise ArtifactError(f"{what}: files {sorted(present ^ set(expected))} differ from the manifest in {where}")


def _as_uuid(model_id: object) -> uuid.UUID:
    try:
        return model_id if isinstance(model_id, uuid.UUID) else uuid.UUID(str(model_id))
    except ValueError:
        raise LookupError(f"model id {model_id!r} is not a UUID") from None


class ModelRegistry:
    def __init__(self, engine: Engine, model_dir: str | Path, cache_dir: str | Path | None = None) -> None:
        self.engine = engine
        self.remote = is_remote(model_dir)
        self.model_dir = str(model_dir) if self.remote else Path(model_dir)
        # where verified copies of remote artifacts are unpacked for the loaders
        self.cache_dir = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "cryptocast-artifacts"

    def artifact_dir(self, timeframe: str, version: str) -> Path | str:
        if timeframe not in TIMEFRAMES:
            raise ValueError(f"timeframe {timeframe!r} is not one of {TIMEFRAMES}")
        if not version or "/" in version or version.startswith("."):
            raise ValueError(f"model version {version!r} cannot name a folder")
        if self.remote:
            return join(self.model_dir, timeframe, version)
        return Path(self.model_dir) / timeframe / version

    def next_version(self, timeframe: str) -> str:
        """`v1.0`, `v2.0`, ...: one more than the highest registered version of this timeframe."""
        with session_scope(self.engine) as session:
            versions = session.exec(select(ModelRecord.version).where(ModelRecord.timeframe == timeframe)).all()
        numbers = [int(m.group(1)) for v in versions if (m := _VERSION_RE.match(v))]
        return f"v{max(numbers, default=0) + 1}.0"

    def register(
        self,
        timeframe: str,
        write_artifact: Callable[[Path], None],
        info: TrainingInfo,
        version: str | None = None,
    ) -> ModelRecord:
        """Write the artifact (atomically, as a folder rename) and insert its inactive row."""
        version = version or self.next_version(timeframe)
        final = self.artifact_dir(timeframe, version)
        if self.remote:
            self._upload(timeframe, version, write_artifact)
            return self._insert(timeframe, version, str(final), info, lambda: None)
        final = Path(final)
        if final.exists():
            raise ArtifactError(f"artifact folder {final} already exists; versions are never overwritten")
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=final.parent))
        try:
            manifest = _stage(staging, write_artifact, f"model of {timeframe} {version}")
            (staging / MANIFEST).write_text(_manifest_text(manifest))
            for name in [*manifest, MANIFEST]:
                with open(staging / name, "rb") as handle:
                    os.fsync(handle.fileno())
            os.rename(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self._insert(timeframe, version, str(final), info, lambda: shutil.rmtree(final, ignore_errors=True))

    def _upload(self, timeframe: str, version: str, write_artifact: Callable[[Path], None]) -> None:
        """Write locally, then upload one object per file, the manifest last: an artifact without
        its manifest is incomplete and never opened (and has no `models` row)."""
        remote = Location.of(str(self.artifact_dir(timeframe, version)))
        if remote.files(remote.path):
            raise ArtifactError(f"artifact {self.artifact_dir(timeframe, version)} already exists; "
                                f"versions are never overwritten")
        with tempfile.TemporaryDirectory(prefix=f"cryptocast-{version}-") as staging_name:
            staging = Path(staging_name)
            manifest = _stage(staging, write_artifact, f"model of {timeframe} {version}")
            for name in manifest:
                remote.write_bytes(remote.child(name), (staging / name).read_bytes())
            remote.write_bytes(remote.child(MANIFEST), _manifest_text(manifest).encode())

    def _insert(self, timeframe: str, version: str, model_path: str, info: TrainingInfo,
                undo: Callable[[], None]) -> ModelRecord:
        record = ModelRecord(
            timeframe=timeframe,
            version=version,
            training_start=naive_utc(info.training_start),
            training_end=naive_utc(info.training_end),
            num_symbols=info.num_symbols,
            top_symbols=list(info.top_symbols),
            feature_count=info.feature_count,
            accuracy_avg=None if info.accuracy_avg is None else Decimal(f"{info.accuracy_avg:.4f}"),
            model_path=model_path,
            is_active=False,
            trained_at=naive_utc(info.trained_at),
        )
        try:
            with session_scope(self.engine) as session:
                session.add(record)
        except BaseException:
            undo()
            raise
        return record

    def activate(self, model_id: object) -> ModelRecord:
        """Make `model_id` the only active model of its timeframe, in one transaction."""
        with session_scope(self.engine) as session:
            record = session.get(ModelRecord, _as_uuid(model_id))
            if record is None:
                raise LookupError(f"no registered model with id {model_id}")
            session.execute(
                sa.update(ModelRecord)
                .where(ModelRecord.timeframe == record.timeframe, ModelRecord.is_active.is_(True))
                .values(is_active=False)
            )
            session.flush()  # the partial unique index sees the old one gone before the new one
            record.is_active = True
            session.add(record)
        return record

    def active(self, timeframe: str) -> ModelRecord | None:
        with session_scope(self.engine) as session:
            return session.exec(
                select(ModelRecord).where(ModelRecord.timeframe == timeframe, ModelRecord.is_active.is_(True))
            ).first()

    def get(self, model_id: object) -> ModelRecord | None:
        with session_scope(self.engine) as session:
            return session.get(ModelRecord, _as_uuid(model_id))

    def list(self, timeframe: str | None = None) -> list[ModelRecord]:
        with session_scope(self.engine) as session:
            query = select(ModelRecord).order_by(ModelRecord.timeframe, ModelRecord.trained_at)
            if timeframe is not None:
                query = query.where(ModelRecord.timeframe == timeframe)
            return list(session.exec(query).all())

    def open_artifact(self, record: ModelRecord) -> Path:
        """The verified artifact folder of `record` (a local copy of a remote one); raises
        ArtifactError if anything changed."""
        if is_remote(record.model_path):
            return self._download(record)
        folder = Path(record.model_path)
        manifest_path = folder / MANIFEST
        if not manifest_path.is_file():
            raise ArtifactError(f"model {record.timeframe} {record.version}: {manifest_path} is missing")
        try:
            expected: dict[str, str] = json.loads(manifest_path.read_text())["files"]
        except (ValueError, KeyError) as exc:
            raise ArtifactError(f"model {record.timeframe} {record.version}: {manifest_path} is unreadable") from exc
        present = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} - {MANIFEST}
        _check_files(f"model {record.timeframe} {record.version}", present, expected, str(folder))
        for name, digest in expected.items():
            if _digest(folder / name) != digest:
                raise ArtifactError(
                    f"model {record.timeframe} {record.version}: {folder / name} was altered after registration"
                )
        return folder

    def _download(self, record: ModelRecord) -> Path:
        """Fetch a remote artifact into the local cache, checking every file against its manifest."""
        name = f"model {record.timeframe} {record.version}"
        remote = Location.of(record.model_path)
        try:
            expected: dict[str, str] = json.loads(remote.read_bytes(remote.child(MANIFEST)))["files"]
        except FileNotFoundError:
            raise ArtifactError(f"{name}: {record.model_path} has no {MANIFEST}") from None
        except (OSError, ValueError, KeyError) as exc:
            raise ArtifactError(f"{name}: the manifest of {record.model_path} is unreadable ({exc})") from exc
        _check_files(name, set(remote.files(remote.path)) - {MANIFEST}, expected, record.model_path)
        final = self.cache_dir / record.timeframe / f"{record.version}-{record.id}"
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{record.version}.", dir=final.parent))
        try:
            for relative, digest in expected.items():
                data = remote.read_bytes(remote.child(relative))
                if hashlib.sha256(data).hexdigest() != digest:
                    raise ArtifactError(f"{name}: {join(record.model_path, relative)} was altered after registration")
                target = staging / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            shutil.rmtree(final, ignore_errors=True)
            os.rename(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return final
