"""Benchmark: Fashion-MNIST at the paper's shape (d = 60,000 train, 10,000 test) end to end on this
machine, each step a `dmstore` command timed with its peak RSS:

    python bench/bench_fashion.py                               # 10,000 models, 500 eval, 1,000 targets
    python bench/bench_fashion.py --models 2000 --eval 200 --targets 200 --dir /tmp/fash   # smaller

Steps: train the fit models (`dmstore train --recipe fashion --workers 2`), the eval models,
compact, difference of means for all 10,000 test targets, LASSO for the first --targets test
targets (--lasso; at d = 60,000 in data space from the masks' bits), `dmstore attribute` for
trak, if, tracin, graddot and repsim on those targets, the frontier of difference of means
(`dmstore frontier` on the --targets targets, where every method has scores), the store's bytes per margin, and the method table (held-out LDS).
Reruns resume: stored models and identical fits are reused. Needs Debian's
dataset-fashion-mnist (or DMSTORE_FASHION_DATA).
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

from timing import options

D, N_TEST = 60000, 10000


def step(name: str, cmd: list[str], timeout: float | None = None) -> dict:
    """Run a dmstore command; its wall time and the peak RSS of its process tree (largest child)."""
    t0 = time.time()
    try:
        p = subprocess.run([sys.executable, "-m", "dmstore", "-q", *cmd], capture_output=True, text=True,
                           timeout=timeout)
        ok, tail = p.returncode == 0, (p.stdout + p.stderr).strip().splitlines()[-3:]
    except subprocess.TimeoutExpired:
        ok, tail = False, [f"stopped after {timeout:.0f} s"]
    secs = time.time() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 / 1024
    print(f"{name:<34} {secs:8.1f} s   peak RSS so far {rss:5.2f} GiB   {'ok' if ok else 'FAILED'}", flush=True)
    for line in tail:
        print(f"    {line[:200]}", flush=True)
    return {"ok": ok, "s": secs}


def main():
    a = options(__doc__, models=10000, eval=500, targets=1000, alpha=0.5, workers=2, batch=500,
                dir=("bench-fashion", "where the store lives (reruns resume)"),
                lasso=(False, "also fit LASSO on the targets (working sets in data space: no 14.4 GB Gram)"),
                methods=("trak,if,tracin,graddot,repsim", "attribution methods to run"),
                shares=("1000,2000,5000", "frontier shares for difference of means (plus all models)"),
                timeout=(3600.0, "seconds a step may run"))
    root = os.path.join(a.dir, "store")
    os.makedirs(a.dir, exist_ok=True)
    tgt = f"{D}-{D + a.targets - 1}"
    print(f"Fashion-MNIST: d = {D:,}, {N_TEST:,} test targets; {a.models:,} fit models at alpha {a.alpha}, "
          f"{a.eval:,} eval models; {a.targets:,} targets for LASSO and attribution; {os.cpu_count()} cores", flush=True)
    out = {}
    out["train"] = step(f"train {a.models:,} models", ["train", root, "--recipe", "fashion", "--alpha", str(a.alpha),
                                                      "--models", str(a.models), "--batch", str(a.batch),
                                                      "--workers", str(a.workers)], a.timeout)
    if out["train"]["ok"]:
        print(f"    {60 * a.models / out['train']['s']:.0f} models/min", flush=True)
    step(f"train {a.eval:,} eval models", ["train", root, "--recipe", "fashion", "--alpha", str(a.alpha), "--models",
                                           str(a.eval), "--role", "eval", "--batch", str(a.batch),
                                           "--workers", str(a.workers)], a.timeout)
    step("compact", ["compact", root], a.timeout)
    fit = ["fit", root, "--experiment", "fashion", "--alpha", str(a.alpha)]
    step("diff_means, all 10,000 targets", fit + ["--estimator", "diff_means"], a.timeout)
    if a.lasso:
        # the default 30-λ path: on 20 targets it took 52 s against 394 s for 10 λ (whose larger steps
        # grow the working sets past the sub-problem bound, so most columns fell to the full problem)
        step(f"lasso, {a.targets:,} targets", fit + ["--targets", tgt, "--path-patience", "2"], a.timeout)
    for m in a.methods.split(","):
        step(f"attribute {m}, {a.targets:,} targets", ["attribute", root, "--method", m, "--targets", tgt], a.timeout)
    shares = [int(x) for x in a.shares.split(",") if int(x) < a.models]
    if shares:
        step("frontier (diff_means)", ["frontier", root, "--experiment", "fashion", "--alpha", str(a.alpha),
                                       "--estimators", "diff_means", "--targets", tgt,
                                       "--models", ",".join(map(str, shares + [a.models]))], a.timeout)
    def du(path):
        return sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(path) for f in fs)
    subprocess.run([sys.executable, "-m", "dmstore", "-q", "vacuum", root, "--retain", "0", "--force"], capture_output=True)
    size, models_b, fits_b = du(root), du(os.path.join(root, "batches")), du(os.path.join(root, "fits"))
    n_models = a.models + a.eval
    print(f"store {size / 2**30:.2f} GiB after vacuum: models and margins {models_b / 2**30:.2f} GiB = "
          f"{models_b / (n_models * (D + N_TEST)):.2f} bytes per margin ({n_models:,} models x {D + N_TEST:,} "
          f"examples, masks included); fits and weights {fits_b / 2**30:.2f} GiB", flush=True)
    p = subprocess.run([sys.executable, "-m", "dmstore", "query", root,
                        "SELECT fit_id, estimator, n_targets, round(lds, 3) AS lds, n_lds, round(lds_common, 3) AS "
                        "lds_common, n_common FROM estimator_comparison ORDER BY lds DESC"],
                       capture_output=True, text=True)
    print(p.stdout + p.stderr, flush=True)


if __name__ == "__main__":
    main()
