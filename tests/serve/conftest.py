"""A small real digits store for the explorer's tests: 300 MLPs, 60 held-out masks × 2 seeds,
a lasso fit and a difference-of-means fit on 12 test digits, one retrained removal set."""
import pytest

from dmstore import Store
from dmstore.analysis.counterfactual import counterfactual_removals
from dmstore.fit import fit
from dmstore.train import train

TARGETS = list(range(1347, 1359))


@pytest.fixture(scope="session")
def digits_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve") / "store"
    train(root, "digits", models=300, batch=300, progress=False)
    train(root, "digits", models=60, batch=60, role="eval", repeats=2, progress=False)
    st = Store.open(root, "a")
    lasso = fit(st, "digits", 0.5, targets=TARGETS, n_lambdas=4, lambda_min_ratio=0.05, progress=False).fit_id
    dm = fit(st, "digits", 0.5, estimator="diff_means", targets=TARGETS, progress=False).fit_id
    w = st.connect().execute(f"SELECT train_id FROM dm_weights({lasso}) WHERE target_id = {TARGETS[0]} "
                             f"ORDER BY weight DESC LIMIT 5").fetchall()
    sets = root.parent / "sets.csv"
    sets.write_text("set_id,target_id,train_id\n" + "".join(f"0,{TARGETS[0]},{r[0]}\n" for r in w))
    counterfactual_removals(st, lasso, str(sets), trials=2)
    return {"root": root, "lasso": lasso, "dm": dm, "targets": TARGETS}
