"""Recipe fashion on the real Fashion-MNIST files (Debian's dataset-fashion-mnist; skipped with
the reason when it is not installed): the idx reader against the files' own headers, the
original split, images byte-equal to the files, a few real models trained through the CLI, and
the errors a user gets without the files or with a damaged one."""
import gzip
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dmstore.cli import cli
from dmstore.errors import InputError
from dmstore.recipes.fashion import DEBIAN_DIR, FashionMLP, fashion_dir, read_idx

HAVE = (Path(DEBIAN_DIR) / "train-images-idx3-ubyte.gz").is_file()
needs_files = pytest.mark.skipif(not HAVE, reason="Debian's dataset-fashion-mnist is not installed "
                                                  "(apt-get install dataset-fashion-mnist)")


@pytest.fixture(scope="module")
def recipe():
    return FashionMLP()


@needs_files
def test_files_and_split(recipe):
    raw = gzip.open(Path(DEBIAN_DIR) / "t10k-images-idx3-ubyte.gz").read()
    imgs = read_idx(Path(DEBIAN_DIR) / "t10k-images-idx3-ubyte.gz")
    assert imgs.shape == (10000, 28, 28) and imgs.tobytes() == raw[16:]
    assert recipe.d == 60000 and recipe.n == 70000 and recipe.X.shape == (70000, 196)
    assert np.bincount(recipe.y[:60000]).tolist() == [6000] * 10 and np.bincount(recipe.y[60000:]).tolist() == [1000] * 10
    ex = recipe.examples()
    assert ex.num_rows == 70000 and ex["split"][59999].as_py() == "train" and ex["split"][60000].as_py() == "test"
    assert ex["class_name"][0].as_py() == "Ankle boot" and ex["label"][0].as_py() == 9   # the file's first image
    img = recipe.image([3, 60000 + 3])
    assert img.dtype == np.uint8 and (img[1] == imgs[3]).all()
    assert abs(float(recipe.X[:60000].mean())) < 1e-4


@needs_files
def test_real_models_learn(recipe):
    rng = np.random.default_rng(0)
    masks = np.zeros((4, recipe.d), bool)
    for m in masks:
        m[rng.choice(recipe.d, 3000, replace=False)] = True
    out = recipe.train(masks, np.arange(4))
    assert out["margins"].shape == (4, 70000) and out["margins"].dtype == np.float32
    assert (out["test_accuracy"] > 0.65).all()    # 10 classes: chance is 0.1


@needs_files
def test_train_cli(tmp_path):
    res = CliRunner().invoke(cli, ["train", str(tmp_path / "f"), "--recipe", "fashion", "--models", "4", "--batch", "4"])
    assert res.exit_code == 0, res.output
    from dmstore import Store
    st = Store.open(tmp_path / "f")
    assert st.d == 60000 and st.n_examples == 70000 and st.model_ids("fashion", 0.5).size == 4


def test_missing_and_damaged_files(tmp_path):
    with pytest.raises(InputError, match="apt-get install dataset-fashion-mnist.*--data DIR"):
        fashion_dir(str(tmp_path))
    res = CliRunner().invoke(cli, ["train", str(tmp_path / "s"), "--recipe", "fashion", "--data", str(tmp_path),
                                   "--models", "2"])
    assert res.exit_code == 1 and "dataset-fashion-mnist" in res.output and not (tmp_path / "s").exists()
    bad = tmp_path / "t10k-labels-idx1-ubyte"
    bad.write_bytes(b"\x00\x00\x08\x01" + (100).to_bytes(4, "big") + bytes(10))
    with pytest.raises(InputError, match="truncated"):
        read_idx(bad)
    bad.write_bytes(b"\x00\x00\x0d\x01" + bytes(8))
    with pytest.raises(InputError, match="not an idx file"):
        read_idx(bad)
    res = CliRunner().invoke(cli, ["train", str(tmp_path / "s"), "--recipe", "digits", "--data", str(tmp_path),
                                   "--models", "2"])
    assert res.exit_code == 1 and "takes no" in res.output
