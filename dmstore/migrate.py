"""Store format migrations: one function per step from format version v to v + 1.

Format 1 is the first, so no step exists yet; `migrate` says so instead of guessing. A later
format adds `MIGRATIONS[1] = _v1_to_v2` (rewrite files under `.tmp/`, then the manifest last).
"""
from __future__ import annotations

import json
from pathlib import Path

from . import layout as L
from .errors import StoreError
from .schema import format_version

MIGRATIONS: dict = {}


def migrate(root) -> str:
    root = Path(root)
    mpath = root / L.MANIFEST
    if not mpath.exists():
        raise StoreError(f"{root}: not a dmstore store (no {L.MANIFEST})")
    version = int(json.loads(mpath.read_text())["format_version"])
    ours = format_version()
    if version == ours:
        return f"{root} is at format version {ours}; nothing to migrate"
    if version > ours:
        raise StoreError(f"{root}: format version {version} is newer than this dmstore's {ours}; upgrade dmstore")
    while version < ours:
        step = MIGRATIONS.get(version)
        if step is None:
            raise StoreError(f"{root}: no migration from format version {version} to {version + 1} exists "
                             f"(format 1 is the first this dmstore knows)")
        step(root)
        version += 1
    return f"{root} migrated to format version {ours}"
