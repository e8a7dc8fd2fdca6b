# Wrote tests/data/store_v1 with the format-1 code (commit ede4779); kept for the v1 -> v2 migration test.
# Not run by the suite: format-1 writers no longer exist.
import sys, numpy as np, shutil
sys.path.insert(0, "tests")
from conftest import Synth
from dmstore import Store
from dmstore.fit import fit
out = sys.argv[1]
shutil.rmtree(out, ignore_errors=True)
s = Synth(m=60, d=16, n_test=4, seed=7)
st = Store.create(out, train_size=16, test_size=4)
roles = np.array(["fit"] * 40 + ["val"] * 10 + ["eval"] * 10, dtype=object)
for lo in range(0, 60, 20):
    st.append("exp", 0.5, s.masks[lo:lo+20], s.margins[lo:lo+20], s.targets, seeds=s.seeds[lo:lo+20], roles=roles[lo:lo+20])
print(fit(st, "exp", 0.5, targets="test", estimator="lasso", n_lambdas=5))
