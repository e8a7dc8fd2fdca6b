"""A fit's train-major copy (`weights_by_train`): its selected weights sorted by (train_id,
target_id) in row groups of `BY_TRAIN_GROUP_ROWS`, so that one training example's weights over
every target — the explorer's example page, "which targets does this example move" — read the
few row groups whose train_id statistics admit it instead of scanning the fit (at 10,000 targets
× 50,000 train examples a scan reads 10⁹ weights).

The copy is a unit of its own, committed with the fit's id in its log entry: overwriting the fit
(`ingest scores --mode overwrite`) retires it with the fit, and a commit that retires the fit
while the copy is written makes the copy's commit fail (nothing is left behind).
"""
from __future__ import annotations

import time

import duckdb
import numpy as np
import pyarrow as pa

from ..errors import CommitConflict, StoreError
from ..progress import progress
from ..storage import paths as P
from ..storage.parquet import BY_TRAIN_GROUP_ROWS
from ..store.commit import commit_unit
from ..store.fits import BY_TRAIN, copied_fits, require_fit
from .query import run

RELATION = BY_TRAIN
# DuckDB's memory for the sort (beyond it, it spills into the store's .tmp/): a copy of 5·10⁸
# weights took 137 s at 3.3 GB peak RSS within 3 GB, where half the memory gave 193-235 s at 13 GB
SORT_MEMORY = "3GB"


def write_by_train(store, fit_id: int, show_progress: bool = True) -> dict:
    """Write and commit fit `fit_id`'s train-major copy; returns {"fit_id", "rows", "seconds",
    "written": False when the snapshot already has one}. NotFoundError for an unknown fit.
    Memory: DuckDB's sort of the fit's weights (12 B a weight) within SORT_MEMORY, spilled into
    the store's `.tmp/` beyond it; the file is written as the sort streams out."""
    fit_id = int(fit_id)
    run_row = require_fit(store, fit_id)
    base = store.snapshot()
    if fit_id in copied_fits(base):
        return {"fit_id": fit_id, "rows": None, "seconds": 0.0, "written": False}
    t0 = time.time()
    con = store.connect(memory_limit=SORT_MEMORY)
    sel = run(con, "fit_selected_lams", f=fit_id).fetchnumpy()
    tids, lam_of = sel["target_id"].astype(np.int32), sel["lam"].astype(np.float64)
    total = int(sel["nnz"].sum())
    n_rows = [0]

    def rows():
        bar = progress(total, f"fit {fit_id} ({run_row['estimator']}) by train", "weight",
                       enabled=None if show_progress else False)
        n_rows[0] = 0
        try:
            stored = run(con, "fit_selected_only", f=fit_id).fetchall()[0][0]   # no path weights: no join
            reader = run(con, "by_train_rows_stored" if stored else "by_train_rows", f=fit_id) \
                .to_arrow_reader(BY_TRAIN_GROUP_ROWS)
            for b in reader:   # each batch a row group: sizes as DuckDB streams them
                t = b.column("target_id").to_numpy()
                yield pa.table({"fit_id": pa.array(np.full(b.num_rows, fit_id, np.int64)),
                                "target_id": b.column("target_id"),
                                "lam": pa.array(lam_of[np.searchsorted(tids, t)]),
                                "train_id": b.column("train_id"), "weight": b.column("weight")})
                n_rows[0] += b.num_rows
                bar.update(b.num_rows)
        except duckdb.Error as e:
            raise StoreError(f"fit {fit_id}: reading its weights for the train-major copy failed: "
                             f"{str(e).strip()}") from None
        finally:
            bar.close()

    copied_meanwhile = []

    def check(c):
        for p in c.get("remove", []):
            if base.units.get(p, {}).get("fit_id") == fit_id:
                raise CommitConflict(f"fit {fit_id} was retired (commit {c['version']}, {c['operation']}) while "
                                     f"its train-major copy was written; nothing was committed")
        for e in c.get("add", []):
            if e.get("fit_id") == fit_id and RELATION in e.get("relations", ()):
                copied_meanwhile.append(c["version"])
                raise CommitConflict(f"fit {fit_id} got a train-major copy in commit {c['version']}")
    try:
        commit_unit(store, P.FITS, {RELATION: rows}, "by-train", {"fit_id": fit_id},
                    info={"fit_id": fit_id, "relations": [RELATION]}, check=check,
                    name=f"{fit_id:08d}-by-train", base=base)
    except CommitConflict:
        if not copied_meanwhile:
            raise
        return {"fit_id": fit_id, "rows": None, "seconds": time.time() - t0, "written": False}
    finally:
        con.close()
    return {"fit_id": fit_id, "rows": n_rows[0], "seconds": time.time() - t0, "written": True}
