"""The manifest (`dmstore.json`: format version, d, creation): what makes a directory a store."""
from __future__ import annotations

import json
from pathlib import Path

from .. import __version__
from ..errors import StoreError
from . import paths as P
from .files import read_json, utc_now, write_atomic
from .schema import format_version

REQUIRED = ("format_version", "train_size", "n_examples")


def new_manifest(d: int, n_examples: int) -> dict:
    return {
        "format": "dmstore",
        "format_version": format_version(),
        "created_at": utc_now("seconds"),
        "created_by": f"dmstore {__version__}",
        "train_size": int(d),
        "n_examples": int(n_examples),
    }


def write_manifest(root: Path, manifest: dict) -> None:
    """Replace `dmstore.json` atomically (written privately and fsynced, then renamed)."""
    write_atomic(Path(root) / P.MANIFEST, json.dumps(manifest, indent=2) + "\n")


def read_manifest(root: Path, check_version: bool = True) -> dict:
    """The parsed manifest; a typed error names what is wrong and how to fix it."""
    mpath = root / P.MANIFEST
    if not mpath.exists():
        raise StoreError(f"{root}: not a dmstore store (no {P.MANIFEST}); create one with "
                         f"Store.create(path, train_size=D) or `dmstore init {root} --train-size D`")
    fix = "restore dmstore.json from a copy of the store"
    manifest = read_json(mpath, "manifest", fix)
    missing = [k for k in REQUIRED if k not in manifest]
    if missing:
        raise StoreError(f"{mpath}: the manifest lacks {', '.join(missing)}; the store is damaged ({fix})")
    bad = [k for k in REQUIRED if not isinstance(manifest[k], int) or isinstance(manifest[k], bool)
           or manifest[k] < (1 if k == "train_size" else 0)]
    if bad:
        raise StoreError(f"{mpath}: the manifest's {bad[0]} is {manifest[bad[0]]!r}, not a valid count; "
                         f"the store is damaged ({fix})")
    version = manifest["format_version"]
    ours = format_version()
    if check_version and version > ours:
        raise StoreError(f"{root}: store format version {version} is newer than this dmstore "
                         f"supports (format version {ours}); upgrade dmstore to read it")
    if check_version and version < ours:
        raise StoreError(f"{root}: store format version {version} is older than this dmstore's "
                         f"format version {ours}; migrate it with `dmstore migrate {root}`")
    return manifest
