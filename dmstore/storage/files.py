"""Atomic file primitives every writer uses: durable atomic replacement, exclusive creation,
JSON records that say which file is damaged, and UTC timestamps."""
from __future__ import annotations

import datetime as _dt
import json
import os
import time
from pathlib import Path

from ..errors import StoreError


def utc_now(timespec: str = "milliseconds") -> str:
    """The current UTC time in ISO 8601 (e.g. 2026-12-02T19:04:05.123+00:00)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec=timespec)


def fsync_dir(d: Path) -> None:
    """Make the names in directory `d` durable (a rename or link into it survives a crash)."""
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _private_temp(path: Path) -> Path:
    return path.parent / f".{path.name}.{os.getpid()}.{time.time_ns()}"


def _write_durable(tmp: Path, text: str) -> None:
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text`: written privately and fsynced first, so a reader or a crash
    sees the old file or the new one, never a torn one."""
    replace_atomic(path, lambda tmp: Path(tmp).write_text(text))


def replace_atomic(path: Path, write) -> None:
    """Replace `path` with what `write(tmp_path)` writes to a private temporary file (fsynced
    here), so a reader or a crash sees the old file or the new one, never a torn one; the
    temporary file is removed whatever happens."""
    path = Path(path)
    tmp = _private_temp(path)
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def create_exclusive(path: Path, payload: dict) -> bool:
    """Create `path` holding `payload` (JSON) unless it exists (then False). The file is
    complete and durable before its name appears: written privately, then hard-linked to its
    name (which fails if the name exists, on any machine sharing the file system)."""
    path = Path(path)
    path.parent.mkdir(exist_ok=True)
    tmp = _private_temp(path)
    try:
        _write_durable(tmp, json.dumps(payload, indent=1) + "\n")
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
        fsync_dir(path.parent)


def read_json(path: Path, what: str, fix: str, kind: type = dict):
    """The JSON value of `path`, which must be a `kind`; a StoreError names the file, says
    what it should hold (`what`) and how to fix it (`fix`) when it is unreadable."""
    try:
        value = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise StoreError(f"{path}: missing ({what}); {fix}") from None
    except (OSError, ValueError) as e:
        raise StoreError(f"{path}: unreadable {what} ({e}); {fix}") from None
    if not isinstance(value, kind):
        raise StoreError(f"{path}: holds a JSON {type(value).__name__}, not the {what}; {fix}")
    return value


def folder_size(path: Path) -> dict:
    """{'files', 'bytes'} of every file under folder `path` (zeros when it is absent)."""
    path = Path(path)
    files = [f for f in path.rglob("*") if f.is_file()] if path.is_dir() else []
    return {"files": len(files), "bytes": sum(f.stat().st_size for f in files)}
