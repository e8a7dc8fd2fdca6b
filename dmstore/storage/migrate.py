"""Store format migrations: one function per step from format version v to v + 1.

Each step writes what the new format adds, and the manifest last: a step interrupted before the
manifest changes is rerun from the start (each step is idempotent).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from ..errors import StoreError
from . import log
from . import paths as P
from .units import writer_lock
from .manifest import write_manifest
from .schema import format_version


def _v1_to_v2(root: Path) -> None:
    """Format 1 found batches by globbing; format 2 names them in a commit log. Commit 0 lists
    every unit directory the old glob would have read (so the store reads exactly as before)."""
    if (root / log.LOG).exists():
        shutil.rmtree(root / log.LOG)   # a partial log of an interrupted migration
    add = []
    for prefix in (P.BATCHES, P.FITS, P.ANALYSES):
        for unit in sorted((root / prefix).iterdir()) if (root / prefix).exists() else []:
            if not unit.is_dir():
                continue
            rels = sorted(f.stem for f in unit.glob("*.parquet"))
            e = {"path": f"{prefix}/{unit.name}", "relations": rels}
            if "models" in rels:
                e["models"] = pq.ParquetFile(unit / "models.parquet").metadata.num_rows
                e["margins"] = pq.ParquetFile(unit / "margins.parquet").metadata.num_rows
            if "fit_runs" in rels:
                ids = pq.read_table(unit / "fit_runs.parquet", columns=["fit_id"])["fit_id"].to_pylist()
                if ids:
                    e["fit_id"] = int(ids[0])
            add.append(e)
    log.init(root, add, operation="migrate", info={"from_format": 1, "to_format": 2})


MIGRATIONS = {1: _v1_to_v2}


def migrate(root) -> str:
    root = Path(root)
    mpath = root / P.MANIFEST
    if not mpath.exists():
        raise StoreError(f"{root}: not a dmstore store (no {P.MANIFEST})")
    try:
        manifest = json.loads(mpath.read_text())
        version = int(manifest["format_version"])
    except (ValueError, KeyError, TypeError) as e:
        raise StoreError(f"{mpath}: unreadable manifest ({e})") from None
    ours = format_version()
    if version == ours:
        return f"{root} is at format version {ours}; nothing to migrate"
    if version > ours:
        raise StoreError(f"{root}: format version {version} is newer than this dmstore's {ours}; upgrade dmstore")
    start = version
    with writer_lock(root):
        while version < ours:
            step = MIGRATIONS.get(version)
            if step is None:
                raise StoreError(f"{root}: no migration from format version {version} to {version + 1} exists")
            step(root)
            version += 1
            manifest["format_version"] = version
            write_manifest(root, manifest)
    return f"{root} migrated from format version {start} to {ours}"
