"""The README's DataFrame one-liners: a dmstore connection's results as pandas, polars and
Arrow, equal to the rows DuckDB fetches."""
import numpy as np
import pytest

import dmstore
from dmstore import Store


def test_results_as_pandas_polars_and_arrow(tmp_path):
    pd = pytest.importorskip("pandas")
    pl = pytest.importorskip("polars")
    st = Store.create(tmp_path / "s", train_size=8, test_size=3)
    rng = np.random.default_rng(0)
    masks = np.array([rng.permutation(8) < 4 for _ in range(6)])
    st.append("e", 0.5, masks, rng.normal(size=(6, 11)).astype(np.float32), np.arange(11), seeds=np.arange(6))
    con = dmstore.connect(st.root)
    sql = "SELECT model_id, example_id, margin FROM margins ORDER BY model_id, example_id"
    want = con.sql(sql).fetchall()
    df = con.sql(sql).df()
    assert isinstance(df, pd.DataFrame) and list(df.itertuples(index=False, name=None)) == want
    p = con.sql(sql).pl()
    assert isinstance(p, pl.DataFrame) and p.rows() == want
    t = con.sql(sql).arrow().read_all()
    assert list(zip(*[t[c].to_pylist() for c in t.column_names])) == want
