"""Benchmark: peak memory of `dmstore fit` (goal: peak RSS <= 1.5 x one float32 Gram d²·4 B + 1 GiB).

    python bench/bench_fit_memory.py                         # m=20000, d=5000, n=1000
    python bench/bench_fit_memory.py --d 8000 --n 20         # the issue's case: < 1.4 GB

The store is built in one process; the fit runs in a fresh process whose peak RSS
(ru_maxrss) is printed beside the bound, one float32 Gram, the dense mask matrix it never
materializes, and the RSS of a process that only imports dmstore and torch (same run).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from timing import options  # noqa: E402

BUILD = textwrap.dedent("""
    import sys, numpy as np
    sys.path.insert(0, {bench!r})
    from dmstore.testing import datamodel_data
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

IMPORTS = "import resource, torch, dmstore.fit, dmstore.store; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"


def main():
    a = options(__doc__, m=20000, d=5000, n=1000)
    root = os.path.join(tempfile.mkdtemp(), "store")
    bench = os.path.dirname(os.path.abspath(__file__))
    subprocess.run([sys.executable, "-c", BUILD.format(bench=bench, root=root, m=a.m, d=a.d, n=a.n)], check=True)
    out = subprocess.run([sys.executable, "-c", FIT.format(root=root)], check=True, capture_output=True, text=True).stdout
    print(out.strip())
    rss = float(out.split("peak_rss_mib")[1])
    base = float(subprocess.run([sys.executable, "-c", IMPORTS], check=True, capture_output=True,
                                text=True).stdout.split()[-1])
    dense = a.m * a.d * 4 / 2**20
    gram = a.d * a.d * 4 / 2**20
    goal = 1.5 * gram + 1024
    print(f"peak RSS {rss:.0f} MiB = {rss / gram:.2f} x one float32 Gram ({gram:.0f} MiB); goal <= {goal:.0f} MiB "
          f"({'met' if rss <= goal else 'NOT met'}); imports alone {base:.0f} MiB; a dense float32 mask matrix "
          f"would be {dense:.0f} MiB")


if __name__ == "__main__":
    main()
