"""The seeded store (several batches, fits and analyses) and the local Spark the dialect tests share."""
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dmstore import Store
from dmstore.analysis import counterfactual, embed, support
from dmstore.fit import fit
from dmstore.train import train

from .linear import D

REC_SPEC = "tests.dialects.linear:REC"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    root = tmp_path_factory.mktemp("spark") / "s"
    train(root, REC_SPEC, models=450, batch=150, role="fit", progress=False)   # 3 batches
    train(root, REC_SPEC, models=80, batch=80, role="val", progress=False)
    train(root, REC_SPEC, models=40, batch=80, role="eval", repeats=2, progress=False)
    st = Store.open(root, "a")
    lasso = fit(st, "lin", 0.5, n_lambdas=5, keep_path=True, dtype="float64", progress=False).fit_id
    dm = fit(st, "lin", 0.5, estimator="diff_means", progress=False).fit_id
    counterfactual(st, lasso, targets=[D, D + 1], ks=(1, 2), trials=1)
    support(st, lasso, targets=[D, D + 2], ks=(1, 2, 4), trials=1)
    embed(st, lasso, pca=3, clusters=2, seed=0)
    st.copy_by_train(lasso, progress=False)   # weights_by_train: the view every engine must read
    return st, lasso, dm


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    from pyspark.sql import SparkSession
    s = (SparkSession.builder.master("local[2]").appName("dmstore-tests")   # no spark-warehouse/ in the checkout
         .config("spark.sql.warehouse.dir", str(tmp_path_factory.mktemp("spark-warehouse")))
         .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
         .config("spark.sql.shuffle.partitions", "2").config("spark.driver.memory", "1g")
         .getOrCreate())
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def removals(seeded, tmp_path_factory):
    path = tmp_path_factory.mktemp("rem") / "removals.parquet"
    rows = [(0, D, 1), (0, D, 2), (0, D, 5), (1, D + 1, 0), (1, D + 1, 3), (1, D + 2, 0), (2, D + 3, 7),
            (3, D + 4, 100)]   # an id no weight has
    pq.write_table(pa.table({"set_id": [r[0] for r in rows], "target_id": pa.array([r[1] for r in rows], pa.int32()),
                             "train_id": pa.array([r[2] for r in rows], pa.int32())}), path)
    return path
