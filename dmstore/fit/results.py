"""What a fit writes: its `fits` rows (per target and λ), non-zero `weights`, the `fit_runs`
row and `eval_predictions`, committed as one unit (or one shard of a run), and the FitResult
returned to the caller."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ..errors import StoreError
from ..store.fits import Claim, SameFit, commit, fit_runs_row, require_fit
from . import runs
from .estimators import to_numpy

FITS_COLUMNS = ("target_id", "lam", "bias", "train_mse", "val_mse", "nnz", "selected", "n_models", "rel_gap",
                "n_iter", "converged")


@dataclass
class FitResult:
    """What a fit (`fit`, `ingest scores`, `attribute`) left in the store: its id and summary,
    and, read back from the store, `target_ids`, `weights()` and `metrics()`."""
    fit_id: int
    estimator: str
    n_targets: int
    n_fit: int
    n_val: int
    n_not_converged: int
    max_rel_gap: float
    wall_time_s: float
    device: str
    not_converged_targets: list
    reused: bool = False     # an identical earlier fit (`reuse=True`), or a shard committed already
    n_clamped: int = 0       # scores fits: targets whose calibration slope was below the floor
    n_selected_not_converged: int = 0   # of the pairs at the cap, those at a target's selected λ
    kind: str = "fit"        # 'fit' (a regression) | 'scores' (ingested) | 'attribute' (computed)
    models_used: int | None = None      # attribute: the full-data models the method trained
    models_cached: bool | None = None   # attribute: whether they came from the store's cache
    store: object = field(default=None, repr=False, compare=False)

    @classmethod
    def from_row(cls, store, r: dict, reused: bool = True, wall_time_s: float | None = None) -> "FitResult":
        """The FitResult of a stored fit_runs row."""
        params = json.loads(r["params"] or "{}")
        inner = params.get("params") or {}
        kind = params.get("source") if params.get("source") in ("scores", "attribute") else "fit"
        if kind == "scores" and "models_trained" in inner:
            kind = "attribute"
        used = int(inner["models_trained"]) if kind == "attribute" and "models_trained" in inner else None
        return cls(r["fit_id"], r["estimator"], r["n_targets"], r["n_fit"], r["n_val"], r["n_not_converged"],
                   r["max_rel_gap"] or 0.0, r["wall_time_s"] if wall_time_s is None else wall_time_s, r["device"], [],
                   reused=reused, n_clamped=int(params.get("n_clamped", 0) or 0), kind=kind, models_used=used,
                   store=store)

    def summary(self) -> str:
        if self.kind == "fit":
            models = f"{self.n_fit} fit + {self.n_val} val models"
        elif self.kind == "attribute":
            models = (f"{self.models_used} full-data model(s) (calibrated on {self.n_fit} fit models"
                      + (", cached" if self.models_cached else "") + ")")
        else:
            models = f"calibrated on {self.n_fit} fit models"
        s = (f"fit {self.fit_id}: {self.estimator} on {self.n_targets} targets, {models}, "
             f"{self.wall_time_s:.1f} s on {self.device}"
             + (" (reused: same settings and models)" if self.reused else ""))
        if self.n_not_converged:
            sel = self.n_selected_not_converged
            s += (f"; {self.n_not_converged} (target, lambda) pairs hit the iteration cap, "
                  + ("none at a selected lambda (the stored datamodels are converged)" if not sel else
                     f"{sel} at the selected lambda (marked converged = false in `fits`)"))
        if self.n_clamped:
            s += (f"; {self.n_clamped} target(s) whose scores anti-correlate with their outputs on the fit "
                  f"models keep a near-constant calibrated prediction")
        return s

    # ---------------------------------------------------------------- read back from the store
    def _store(self):
        if self.store is None:
            raise StoreError(f"fit {self.fit_id}: this FitResult was made without its store; open the store "
                             f"and use dmstore.engine.weights.weight_matrix(store, {self.fit_id})")
        from ..store import Store
        return Store.open(self.store.root)   # the latest version: the fit is in it

    @property
    def target_ids(self) -> np.ndarray:
        """int32 [n_targets]: the fit's targets, ascending (the rows of `weights()`)."""
        from ..engine.weights import fit_target_ids
        return fit_target_ids(self._store().connect(), self.fit_id)

    def weights(self) -> np.ndarray:
        """float32 [n_targets, d]: the selected weights (raw-mask coordinates; attribution fits:
        calibrated scores), rows in `target_ids` order: what `dmstore export --scores` writes."""
        from ..engine.weights import weight_matrix
        return weight_matrix(self._store(), self.fit_id)[1]

    def metrics(self):
        """The fit's `eval_metrics` rows (held-out LDS, Pearson, MSE, AUC per target) as a pyarrow Table."""
        from ..engine.query import run
        return run(self._store().connect(), "fit_metrics", f=int(self.fit_id)).to_arrow_table()


WEIGHT_TABLE_ROWS = 1 << 22   # weights per table handed to the writer (rows stay bounded)
DENSE_SHARE = 0.3             # a block's weights are kept as a dense [d, nb] matrix above this share


@dataclass
class Part:
    """The weights of one block of targets at one λ per target: `lam` float64 [nb], `k` the
    path index (-1: the selected solution), and either `W` float32 [d, nb] (dense blocks) or
    the non-zeros target-major: `counts` int64 [nb], `ti` int32 train ids, `w` float32 values."""
    block_t: np.ndarray
    lam: np.ndarray
    k: int
    W: np.ndarray | None = None
    counts: np.ndarray | None = None
    ti: np.ndarray | None = None
    w: np.ndarray | None = None

    @classmethod
    def of(cls, block_t, lam, W, k) -> "Part":
        Wc = to_numpy(W).astype(np.float32)
        lam = to_numpy(lam).astype(np.float64)
        bt = np.asarray(block_t).astype(np.int32)
        nz = Wc != 0
        if nz.mean() > DENSE_SHARE:
            return cls(bt, lam, k, W=Wc)
        tj, ti = np.nonzero(nz.T)                      # target-major, train ids ascending
        return cls(bt, lam, k, counts=nz.sum(0).astype(np.int64), ti=ti.astype(np.int32), w=Wc[ti, tj])

    def into(self, out: np.ndarray, cols: np.ndarray) -> None:
        """Write this part's weights of the targets at positions `cols` of the block into the
        columns of `out` [d, len(cols)] (zeros elsewhere)."""
        if self.W is not None:
            out[:] = self.W[:, cols]
            return
        ends = np.cumsum(self.counts)
        for c, j in enumerate(cols):
            lo, hi = ends[j] - self.counts[j], ends[j]
            out[self.ti[lo:hi], c] = self.w[lo:hi]

    def triples(self, keep: np.ndarray | None = None):
        """(target_id, lam, train_id, weight) arrays of the targets `keep` (bool [nb]; None: all),
        target-major, at most ~WEIGHT_TABLE_ROWS weights at a time."""
        nb = self.block_t.size
        keep = np.ones(nb, bool) if keep is None else keep
        d = self.W.shape[0] if self.W is not None else None
        per = max(1, WEIGHT_TABLE_ROWS // max(d or 1, 1)) if d else nb
        for lo in range(0, nb, per):
            sel = np.flatnonzero(keep[lo:lo + per]) + lo
            if not sel.size:
                continue
            if self.W is not None:
                Wt = np.ascontiguousarray(self.W[:, sel].T)          # [k, d]
                nz = Wt != 0
                w, ti = Wt[nz], np.broadcast_to(np.arange(d, dtype=np.int32), Wt.shape)[nz]
                cnt = nz.sum(1)
            else:
                ends = np.cumsum(self.counts)
                take = np.concatenate([np.arange(ends[j] - self.counts[j], ends[j]) for j in sel]) \
                    if sel.size else np.zeros(0, np.int64)
                w, ti, cnt = self.w[take], self.ti[take], self.counts[sel]
            yield np.repeat(self.block_t[sel], cnt), np.repeat(self.lam[sel], cnt), ti, w


@dataclass
class Collected:
    """Block results gathered over a fit: per-λ rows of `fits`, and the weights as one list of
    `Part`s per block (dense blocks stay [d, nb] float32: a dense fit of 10,000 targets at
    d = 60,000 holds 2.4 GB here, never 24-byte rows)."""
    rows: list = field(default_factory=list)
    blocks: list = field(default_factory=list)

    def add(self, rows, weights, block_t: np.ndarray) -> None:
        for r in rows:
            keep = r.pop("computed", None)          # a path's λ some targets skipped (path_patience)
            r["target_id"] = block_t
            self.rows.append(r if keep is None or keep.all() else {k: v[keep] for k, v in r.items()})
        self.blocks.append([Part.of(block_t, lam, W, k) for lam, W, k in weights])

    def selected(self):
        """(target_id int [n], bias [n], selected parts), targets ascending."""
        tid = np.concatenate([r["target_id"][r["selected"]] for r in self.rows])
        bias = np.concatenate([r["bias"][r["selected"]] for r in self.rows])
        order = np.argsort(tid)
        return tid[order], bias[order], [p for b in self.blocks for p in b if p.k == -1]

    def selected_matrix(self, t_blk: np.ndarray, d: int) -> np.ndarray:
        """float32 [d, len(t_blk)]: the selected weights of targets `t_blk` (ascending)."""
        W = np.zeros((d, t_blk.size), np.float32)
        for b in self.blocks:
            for p in b:
                if p.k != -1:
                    continue
                pos = np.flatnonzero(np.isin(p.block_t, t_blk))
                if pos.size:
                    cols = np.searchsorted(t_blk, p.block_t[pos])
                    tmp = np.zeros((d, pos.size), np.float32)
                    p.into(tmp, pos)
                    W[:, cols] = tmp
        return W

    def fits(self) -> dict:
        """The fits columns (FITS_COLUMNS), by target and decreasing λ."""
        cat = lambda k: np.concatenate([r[k] for r in self.rows]) if self.rows else np.zeros(0)  # noqa: E731
        fits = {k: cat(k) for k in FITS_COLUMNS}
        order = np.lexsort((-fits["lam"], fits["target_id"]))
        return {k: v[order] for k, v in fits.items()}

    def weight_tables(self, fit_id: int, fits: dict):
        """Arrow tables of the `weights` rows: the selected (refit) solution of every target, and
        path solutions at the other λ (a path solution at a target's selected λ gives way to the
        refit), by target, decreasing λ and train id — block by block (blocks hold disjoint,
        contiguous ranges of targets), a block with one selected part streamed as it is stored."""
        sel_t, sel_lam = fits["target_id"][fits["selected"]], fits["lam"][fits["selected"]]
        o = np.argsort(sel_t)
        sel_t, sel_lam = sel_t[o], sel_lam[o]

        def table(t, lam, ti, w):
            return pa.table({"fit_id": np.full(w.size, fit_id, np.int64), "target_id": t.astype(np.int32),
                             "lam": lam.astype(np.float64), "train_id": ti.astype(np.int32),
                             "weight": w.astype(np.float32)})
        any_rows = False
        for parts in sorted(self.blocks, key=lambda b: int(b[0].block_t.min()) if b else 0):
            if not parts:
                continue
            if len(parts) == 1 and parts[0].k == -1:
                for tr in parts[0].triples():
                    any_rows = True
                    yield table(*tr)
                continue
            cols = []
            for p in parts:
                keep = None
                if p.k >= 0:
                    keep = sel_lam[np.searchsorted(sel_t, p.block_t)] != p.lam
                cols.extend(p.triples(keep))
            t, lam, ti, w = (np.concatenate([c[i] for c in cols]) for i in range(4)) if cols else \
                (np.zeros(0),) * 4
            order = np.lexsort((ti, -lam, t))
            for lo in range(0, max(order.size, 1), WEIGHT_TABLE_ROWS):
                sl = order[lo:lo + WEIGHT_TABLE_ROWS]
                if sl.size:
                    any_rows = True
                    yield table(t[sl], lam[sl], ti[sl], w[sl])
        if not any_rows:
            yield table(*(np.zeros(0),) * 4)


def empty_predictions() -> pa.Table:
    return pa.table({"model_id": pa.array([], pa.int64()), "target_id": pa.array([], pa.int32()),
                     "predicted": pa.array([], pa.float32())})


def fit_tables(fit_id: int, experiment: str, alpha: float, estimator: str, fits: dict, weights,
               preds: pa.Table | None, run: dict) -> dict:
    """kind → Arrow table (weights: a callable returning a fresh stream of tables) of one fit
    unit. `weights(fit_id)`: the weights rows as a stream of tables (`Collected.weight_tables`).
    `run`: the fit_runs columns that are not derived from the fits (see `store.fits.fit_runs_row`;
    n_not_converged is counted here)."""
    nf = fits["target_id"].size
    ids = lambda n: np.full(n, fit_id, np.int64)  # noqa: E731
    conv = fits["converged"].astype(bool)
    preds = empty_predictions() if preds is None else preds
    return {
        "fits": pa.table({
            "fit_id": ids(nf), "experiment": [experiment] * nf, "alpha": np.full(nf, alpha),
            "estimator": [estimator] * nf, "target_id": fits["target_id"].astype(np.int32),
            "lam": fits["lam"].astype(np.float64), "bias": fits["bias"].astype(np.float64),
            "train_mse": fits["train_mse"].astype(np.float64),
            "val_mse": pa.array(fits["val_mse"].astype(np.float64), from_pandas=True),
            "nnz": fits["nnz"].astype(np.int32), "selected": fits["selected"].astype(bool),
            "n_models": fits["n_models"].astype(np.int64), "rel_gap": fits["rel_gap"].astype(np.float64),
            "n_iter": fits["n_iter"].astype(np.int32), "converged": conv,
            "scale": pa.nulls(nf, pa.float64()),
        }),
        "weights": lambda: weights(fit_id),   # a fresh stream for each commit attempt
        "fit_runs": fit_runs_row(fit_id, experiment, alpha, estimator, dict(run, n_not_converged=int((~conv).sum()))),
        "eval_predictions": preds.add_column(0, "fit_id", pa.array(ids(preds.num_rows))),
    }


def write(store, experiment: str, alpha: float, estimator: str, collected: Collected, preds, run: dict,
          t0: float, reports_gap: bool, rec: dict | None = None, shard: tuple | None = None,
          claim: Claim | None = None) -> FitResult:
    """Commit the fit (or, with `rec` and `shard`, one shard of run `rec`); returns its FitResult.
    `claim` (a `reuse` fit): an identical fit committed meanwhile is returned instead."""
    fits = collected.fits()
    weights = lambda fid: collected.weight_tables(fid, fits)  # noqa: E731
    conv = fits["converged"].astype(bool)
    not_conv = sorted(set(fits["target_id"][~conv].tolist()))
    n_sel_nc = int((~conv & fits["selected"].astype(bool)).sum())
    gaps = fits["rel_gap"][np.isfinite(fits["rel_gap"])]
    max_gap = float(gaps.max()) if gaps.size and reports_gap else None
    wall = time.time() - t0
    run = dict(run, wall_time_s=wall, max_rel_gap=max_gap)
    if rec is not None:   # one shard of a run: its targets now, the run's fit_runs row when complete
        t = fit_tables(rec["fit_id"], experiment, alpha, estimator, fits, weights, preds, run)
        t.pop("fit_runs")
        run = dict(run, params=dict(run["params"], run=rec["run"], n_shards=shard[1]))
        stats = {"n_targets": int(np.unique(fits["target_id"]).size), "wall_time_s": wall,
                 "n_not_converged": int((~conv).sum()), "max_rel_gap": max_gap, "device": run["device"]}
        runs.commit_shard(store, rec, shard, t, (experiment, alpha, estimator, run), stats)
        fit_id = rec["fit_id"]
    else:
        try:
            fit_id = commit(store, lambda fid: fit_tables(fid, experiment, alpha, estimator, fits, weights, preds,
                                                          run),
                            claim, store.snapshot(), {"experiment": experiment, "alpha": alpha, "estimator": estimator})
        except SameFit as e:
            from ..store import Store
            return FitResult.from_row(store, require_fit(Store.open(store.root), e.fit_id))
    return FitResult(fit_id, estimator, run["n_targets"], run["n_fit"], run["n_val"], int((~conv).sum()),
                     max_gap if max_gap is not None else 0.0, wall, run["device"], not_conv,
                     n_selected_not_converged=n_sel_nc, store=store)
