"""Benchmark: peak memory of `dmstore fit` at m=20000, d=5000, n=1000 (goal: peak RSS < 2 GiB).

    python bench/bench_fit_memory.py [--m 20000 --d 5000 --n 1000]

The store is built in one process; the fit runs in a fresh process whose peak RSS
(ru_maxrss) is printed beside the size of the dense mask matrix it never materializes.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap

BUILD = textwrap.dedent("""
    import sys, numpy as np
    sys.path.insert(0, {bench!r})
    from synth import datamodel_data
    from dmstore import Store
    m, d, n = {m}, {d}, {n}
    st = Store.create({root!r}, train_size=d, test_size=n)
    step = 2000
    for lo in range(0, m, step):
        X, Y, _ = datamodel_data(step, d, n, seed=lo)
        roles = np.where(np.arange(lo, lo + step) % 10 == 0, "val", "fit").astype(object)
        st.append("mem", 0.5, X, Y, np.arange(d, d + n), roles=roles)
""")

FIT = textwrap.dedent("""
    import resource, time
    from dmstore import Store
    from dmstore.fit import fit
    t0 = time.time()
    r = fit(Store.open({root!r}, "a"), "mem", 0.5, n_lambdas=15, tol=1e-5, progress=False)
    print(r.summary())
    print("peak_rss_mib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
""")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--m", type=int, default=20000)
    ap.add_argument("--d", type=int, default=5000)
    ap.add_argument("--n", type=int, default=1000)
    a = ap.parse_args()
    root = os.path.join(tempfile.mkdtemp(), "store")
    bench = os.path.dirname(os.path.abspath(__file__))
    subprocess.run([sys.executable, "-c", BUILD.format(bench=bench, root=root, m=a.m, d=a.d, n=a.n)], check=True)
    out = subprocess.run([sys.executable, "-c", FIT.format(root=root)], check=True, capture_output=True, text=True).stdout
    print(out.strip())
    rss = float(out.split("peak_rss_mib")[1])
    dense = a.m * a.d * 4 / 2**20
    print(f"peak RSS {rss:.0f} MiB (goal < 2048 MiB); a dense float32 mask matrix alone would be {dense:.0f} MiB")


if __name__ == "__main__":
    main()
