"""IDX reading, dataset resolution and normalisation, on real files written by the tests."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest

from crossrt import fetch
from crossrt.config import DataConfig
from crossrt.data import in_batches, load_folder, normalize, read_idx
from crossrt.errors import DataError
from crossrt.fetch import resolve

from conftest import idx_bytes, make_images, write_dataset, write_idx


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("seed_names", [False, True])
def test_reads_raw_and_gzip_under_both_names(tmp_path, gz, seed_names):
    folder = write_dataset(tmp_path / "d", n_train=30, n_test=20, gz=gz, seed_names=seed_names)
    ds = load_folder(folder, "tiny", "test")
    assert ds.train_images.shape == (30, 28, 28) and ds.train_images.dtype == np.uint8
    assert ds.test_labels.shape == (20,)
    assert sorted(set(ds.train_labels.tolist())) == list(range(10))


def test_read_idx_roundtrip(tmp_path):
    images = make_images(np.arange(5), np.random.default_rng(1))
    assert np.array_equal(read_idx(write_idx(tmp_path / "x-idx3-ubyte", images), 3), images)


def _bad(tmp_path, name: str, content: bytes):
    p = tmp_path / name
    p.write_bytes(content)
    return p


def test_truncated_file(tmp_path):
    full = idx_bytes(np.zeros((4, 28, 28), np.uint8))
    p = _bad(tmp_path, "t-idx3-ubyte", full[:-100])
    with pytest.raises(DataError, match=r"t-idx3-ubyte: truncated: header promises 3136 bytes of data, file has 3036"):
        read_idx(p, 3)
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(_bad(tmp_path, "h-idx3-ubyte", full[:10]), 3)


def test_truncated_gzip(tmp_path):
    p = _bad(tmp_path, "t-idx1-ubyte.gz", gzip.compress(idx_bytes(np.zeros(1000, np.uint8)))[:-20])
    with pytest.raises(DataError, match="not a valid gzip file"):
        read_idx(p, 1)


def test_gz_that_is_not_gzip(tmp_path):
    p = _bad(tmp_path, "x-idx1-ubyte.gz", idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(DataError, match=r"x-idx1-ubyte.gz: not a valid gzip file"):
        read_idx(p, 1)


def test_wrong_magic(tmp_path):
    p = _bad(tmp_path, "m-idx3-ubyte", idx_bytes(np.zeros((2, 28, 28), np.uint8), magic=0x0801))
    with pytest.raises(DataError, match=r"m-idx3-ubyte: wrong magic number 0x00000801 \(expected 0x00000803"):
        read_idx(p, 3)


def test_wrong_image_size(tmp_path):
    p = _bad(tmp_path, "s-idx3-ubyte", idx_bytes(np.zeros((2, 32, 32), np.uint8)))
    with pytest.raises(DataError, match="images are 32x32, expected 28x28"):
        read_idx(p, 3)


def test_trailing_bytes(tmp_path):
    p = _bad(tmp_path, "l-idx1-ubyte", idx_bytes(np.zeros(3, np.uint8)) + b"xx")
    with pytest.raises(DataError, match="2 unexpected bytes after the data"):
        read_idx(p, 1)


def test_count_mismatch(tmp_path):
    folder = write_dataset(tmp_path / "d", n_train=30, n_test=20)
    write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros(19, np.uint8))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: 19 labels for 20 images in t10k-images-idx3-ubyte"):
        load_folder(folder, "x", "test")


def test_label_out_of_range(tmp_path):
    folder = write_dataset(tmp_path / "d", n_train=30, n_test=20)
    write_idx(folder / "train-labels-idx1-ubyte", np.full(30, 10, np.uint8))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: label 10 out of range 0..9"):
        load_folder(folder, "x", "test")


def test_missing_file_and_folder(tmp_path):
    folder = write_dataset(tmp_path / "d", n_train=30, n_test=20)
    (folder / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(
        DataError,
        match=r"missing t10k-images \(looked for t10k-images-idx3-ubyte, "
        r"t10k-images.idx3-ubyte, ",
    ):
        load_folder(folder, "x", "test")
    with pytest.raises(DataError, match="no such data folder"):
        load_folder(tmp_path / "nope", "x", "test")


def test_normalize_per_image():
    images = make_images(np.arange(10), np.random.default_rng(0))
    images[3] = 7  # a blank image must not turn into NaN
    x = normalize(images)
    assert x.shape == (10, 1, 28, 28) and x.dtype == np.float32
    live = np.delete(x.reshape(10, -1), 3, axis=0)
    np.testing.assert_allclose(live.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(live.std(axis=1, ddof=1), 1, atol=1e-5)
    assert np.all(x[3] == 0)


def test_resolve_data_dir(tmp_path):
    folder = write_dataset(tmp_path / "mine", n_train=30, n_test=20)
    ds = resolve(DataConfig("auto", folder))
    assert ds.name == "mine" and "--data-dir" in ds.reason
    assert resolve(DataConfig("mnist", folder)).name == "mnist"


def _trust(monkeypatch, name, folder):
    """Make the files in folder the published ones for name (their SHA-256 in the table)."""
    hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    monkeypatch.setitem(fetch.SHA256, name, hashes)


def test_auto_uses_cached_mnist_only_when_verified(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSRT_CACHE", str(tmp_path))
    monkeypatch.setenv("CROSSRT_MIRROR", "http://127.0.0.1:9/")
    monkeypatch.setitem(fetch.SYSTEM_DIRS, "fashion-mnist", ())
    folder = write_dataset(tmp_path / "mnist", n_train=30, n_test=20, gz=True)
    _trust(monkeypatch, "mnist", folder)
    _trust(monkeypatch, "fashion-mnist", write_dataset(tmp_path / "fashion-mnist", n_train=30, n_test=20, gz=True))
    ds = resolve(DataConfig())
    assert ds.name == "mnist" and "cache" in ds.reason
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"tampered")
    ds = resolve(DataConfig())  # the tampered cache is not used, and the bad file is not kept
    assert ds.name == "fashion-mnist"
    assert not (folder / "t10k-labels-idx1-ubyte.gz").exists()


def test_auto_falls_back_to_fashion_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSRT_CACHE", str(tmp_path))
    monkeypatch.setenv("CROSSRT_MIRROR", "http://127.0.0.1:9/")  # nothing listens on port 9
    monkeypatch.setitem(fetch.SYSTEM_DIRS, "fashion-mnist", ())
    _trust(monkeypatch, "fashion-mnist", write_dataset(tmp_path / "fashion-mnist", n_train=30, n_test=20, gz=True))
    ds = resolve(DataConfig())
    assert ds.name == "fashion-mnist"
    assert "auto: MNIST is not cached" in ds.reason and "could not be downloaded" in ds.reason
    assert not (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").exists()


def test_auto_with_no_dataset_anywhere_names_both(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSRT_CACHE", str(tmp_path))
    monkeypatch.setenv("CROSSRT_MIRROR", "http://127.0.0.1:9/")
    monkeypatch.setitem(fetch.SYSTEM_DIRS, "fashion-mnist", ())
    with pytest.raises(
        DataError,
        match=r"neither dataset is available. MNIST: could not download .* "
        r"Fashion-MNIST: could not download .*--data-dir",
    ):
        resolve(DataConfig())


def test_split_keeps_every_image_in_order():
    x = np.arange(250)
    parts = in_batches(x, 100)
    assert [len(p) for p in parts] == [100, 100, 50]
    assert np.array_equal(np.concatenate(parts), x) and parts[0].base is x  # views, not copies
