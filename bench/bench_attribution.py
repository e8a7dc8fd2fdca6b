"""Benchmark: an external score matrix as a fit (`dmstore ingest scores`) against doing the
same LDS by hand.

    python bench/bench_attribution.py                 # 10,000 targets x 50,000 train, float16, 2,000 eval models
    python bench/bench_attribution.py --quick

A store with d train examples, n test targets, `fit` fit models (for the calibration) and
`eval` eval models; a synthetic float16 score matrix [n, d] in a memory-mapped .npy (scores =
the true linear weights + noise). Each step runs in a fresh process, timed with its peak RSS:
  dmstore   ingest_scores (calibration, dense weights written, eval predictions by torch
            matmul) + the LDS from estimator_comparison (SQL)
  numpy     the same eval predictions (mask @ scores, by blocks) + scipy spearmanr per target
  dattri    dattri.metric.lds(score, (ground truth, subset indices)) where installed
The three LDS values are printed and must agree (calibration keeps each target's ranking).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap

from timing import options

BUILD = textwrap.dedent("""
    import numpy as np, sys
    from dmstore import Store
    from dmstore.testing import block_masks
    d, n, m_fit, m_eval, root, scores = {d}, {n}, {fit}, {eval}, {root!r}, {scores!r}
    rng = np.random.default_rng(0)
    st = Store.create(root, train_size=d, test_size=n)
    out = np.lib.format.open_memmap(scores, mode="w+", dtype=np.float16, shape=(n, d))
    theta = np.zeros((d, n), np.float32)
    step = 500
    for lo in range(0, n, step):   # sparse true weights, scores = truth + noise
        t = (rng.standard_t(3, (d, min(step, n - lo))) * (rng.random((d, min(step, n - lo))) < 0.02)).astype(np.float32)
        theta[:, lo:lo + t.shape[1]] = t
        out[lo:lo + t.shape[1]] = (t + rng.normal(scale=0.3, size=t.shape)).T.astype(np.float16)
    out.flush()
    m = m_fit + m_eval
    for lo in range(0, m, 250):
        k = min(250, m - lo)
        X = block_masks(rng, k, d, 0.5)
        Y = X.astype(np.float32) @ theta + rng.normal(size=(k, n)).astype(np.float32)
        roles = np.where(np.arange(lo, lo + k) < m_fit, "fit", "eval").astype(object)
        st.append("syn", 0.5, X, Y, np.arange(d, d + n), roles=roles)
    st.compact(layout="target")
""")

OURS = textwrap.dedent("""
    import json, resource, time
    import dmstore
    from dmstore import Store
    from dmstore.ingest import ingest_scores
    t0 = time.time()
    r = ingest_scores(Store.open({root!r}, "a"), {scores!r}, "synthetic", "syn", 0.5, progress=False)
    t1 = time.time()
    lds = dmstore.connect({root!r}).sql("SELECT lds FROM estimator_comparison WHERE fit_id = $f",
                                        params={{"f": r.fit_id}}).fetchall()[0][0]
    print(json.dumps({{"ingest_s": t1 - t0, "lds_s": time.time() - t1, "lds": lds,
                      "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
""")

NUMPY = textwrap.dedent("""
    import json, resource, time
    import numpy as np, torch
    from scipy.stats import spearmanr
    from dmstore import Store
    t0 = time.time()
    st = Store.open({root!r})
    S = np.load({scores!r}, mmap_mode="r")                       # [n, d] float16
    X = st.mask_matrix("syn", 0.5, role="eval", dtype=np.float32)   # [m_eval, d]
    Y = st.margin_matrix("syn", 0.5, role="eval")                 # [m_eval, n]
    n = S.shape[0]
    P = np.empty_like(Y)
    for lo in range(0, n, 1000):
        P[:, lo:lo + 1000] = X @ np.asarray(S[lo:lo + 1000], np.float32).T
    lds = float(np.nanmean([spearmanr(P[:, j], Y[:, j]).statistic for j in range(n)]))
    print(json.dumps({{"total_s": time.time() - t0, "lds": lds,
                      "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
""")

DATTRI = textwrap.dedent("""
    import json, resource, time
    import numpy as np, torch
    from dattri.metric import lds
    from dmstore import Store
    t0 = time.time()
    st = Store.open({root!r})
    S = torch.from_numpy(np.asarray(np.load({scores!r}, mmap_mode="r"), np.float32).T.copy())   # [d, n]
    X = st.mask_matrix("syn", 0.5, role="eval")
    idx = torch.from_numpy(np.stack([np.flatnonzero(r) for r in X]))   # [m_eval, αd] subset indices
    Y = torch.from_numpy(st.margin_matrix("syn", 0.5, role="eval"))
    corr, _ = lds(S, (Y, idx))
    print(json.dumps({{"total_s": time.time() - t0, "lds": float(np.nanmean(corr.numpy())),
                      "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
""")


def child(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    a = options(__doc__, quick=dict(n=1000, d=5000, fit=500, eval=500), n=10000, d=50000, fit=1000, eval=2000,
                dir=(None, "where to build the store (default: a temp dir)"))
    work = a.dir or tempfile.mkdtemp(prefix="dmstore-bench-attr-")
    root, scores = os.path.join(work, "s"), os.path.join(work, "scores.npy")
    if not os.path.exists(root):
        subprocess.run([sys.executable, "-c", BUILD.format(d=a.d, n=a.n, fit=a.fit, eval=a.eval, root=root,
                                                           scores=scores)], check=True)
    print(f"n = {a.n:,} targets, d = {a.d:,} train examples, {a.fit:,} fit + {a.eval:,} eval models; "
          f"scores float16 {os.path.getsize(scores) / 2**30:.2f} GiB (memory-mapped); {os.cpu_count()} cores", flush=True)
    ours = child(OURS.format(root=root, scores=scores))
    base = child(NUMPY.format(root=root, scores=scores))
    total = ours["ingest_s"] + ours["lds_s"]
    print(f"dmstore ingest scores {ours['ingest_s']:.1f} s (calibration, dense weights, eval predictions) + "
          f"LDS in SQL {ours['lds_s']:.1f} s = {total:.1f} s, peak RSS {ours['rss_mib']:,.0f} MiB; LDS {ours['lds']:.4f}")
    print(f"numpy product + scipy spearmanr   {base['total_s']:.1f} s, peak RSS {base['rss_mib']:,.0f} MiB; "
          f"LDS {base['lds']:.4f}  ->  dmstore {total / base['total_s']:.2f}x the time, "
          f"{ours['rss_mib'] / base['rss_mib']:.2f}x the memory (dmstore also stores the fit for every analytic)")
    try:
        import dattri  # noqa: F401
        dat = child(DATTRI.format(root=root, scores=scores))
        print(f"dattri.metric.lds                 {dat['total_s']:.1f} s, peak RSS {dat['rss_mib']:,.0f} MiB; "
              f"LDS {dat['lds']:.4f}  ->  dmstore {total / dat['total_s']:.2f}x the time")
    except ImportError:
        print("dattri not installed (pip install 'dmstore[attribution]'): its LDS is not measured")
    except subprocess.CalledProcessError as e:
        print(f"dattri.metric.lds failed: {e.stderr.strip().splitlines()[-1] if e.stderr else e}")


if __name__ == "__main__":
    main()
