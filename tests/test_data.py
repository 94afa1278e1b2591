"""Loaders, splits, standardisation and sharding in fungrad.data, on small files written here."""

from __future__ import annotations

import gzip
import re
import struct

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fungrad import data

# --------------------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """An IDX file: magic 00 00 <code> <ndim>, big-endian uint32 sizes, big-endian data."""
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


@pytest.fixture
def mnist_like(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 3, 4), dtype=np.uint8)
    labels = np.array([0, 1, 2, 9, 1, 0, 3], np.uint8)
    return tmp_path, images, labels


def write(path, content: bytes | str, *, gzipped: bool = False):
    content = content.encode() if isinstance(content, str) else content
    path.write_bytes(gzip.compress(content) if gzipped else content)
    return path


def raises_about(path_or_name, error=ValueError):
    """pytest.raises whose message must start with the path or argument name."""
    return pytest.raises(error, match="^" + re.escape(str(path_or_name)))


# --------------------------------------------------------------------------- bundled digits


def test_digits_shapes_and_values():
    digits = data.load_digits()
    assert digits.x.shape == (1797, 64) and digits.x.dtype == np.float32
    assert digits.y.shape == (1797,) and digits.y.dtype == np.int64
    assert digits.name == "digits" and digits.n_classes == 10
    assert digits.x.min() == 0 and digits.x.max() == 16
    assert np.all(digits.x == np.round(digits.x))
    assert set(np.unique(digits.y)) == set(range(10))
    # Some pixels (the image border) are always 0: the standardizer must cope with them.
    assert np.any(np.all(digits.x == 0, axis=0))


@pytest.mark.slow
def test_digits_equal_scikit_learn_copy():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    reference = sklearn_datasets.load_digits()
    digits = data.load("digits")
    np.testing.assert_array_equal(digits.x, reference.data.astype(np.float32))
    np.testing.assert_array_equal(digits.y, reference.target)


# --------------------------------------------------------------------------- npz


def test_npz_flattens_images_and_keeps_integer_labels(tmp_path):
    x = np.arange(5 * 2 * 3, dtype=np.uint8).reshape(5, 2, 3)
    y = np.array([2, 0, 1, 1, 0], np.int32)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    loaded = data.load(str(tmp_path / "d.npz"))
    assert loaded.x.shape == (5, 6) and loaded.x.dtype == np.float32
    np.testing.assert_array_equal(loaded.x, x.reshape(5, 6))
    assert loaded.y.dtype == np.int64 and loaded.n_classes == 3
    np.testing.assert_array_equal(loaded.y, y)
    assert loaded.name == "d.npz"


def test_npz_float_targets_are_regression(tmp_path):
    np.savez(tmp_path / "r.npz", x=np.ones((4, 2)), y=np.linspace(0, 1, 8).reshape(4, 2))
    loaded = data.load_npz(tmp_path / "r.npz")
    assert loaded.n_classes is None and loaded.y.shape == (4, 2) and loaded.y.dtype == np.float32


def test_negative_integer_labels_are_remapped(tmp_path):
    np.savez(tmp_path / "pm.npz", x=np.ones((4, 1)), y=np.array([-1, 1, 1, -1]))
    loaded = data.load_npz(tmp_path / "pm.npz")
    np.testing.assert_array_equal(loaded.y, [0, 1, 1, 0])
    assert loaded.n_classes == 2


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": np.ones((3, 2))}, "missing 'y'"),
        ({"inputs": np.ones((3, 2)), "y": np.ones(3)}, "missing 'x'"),
        ({"x": np.ones((3, 2)), "y": np.array([0, 1])}, "3 rows but labels have 2"),
        ({"x": np.array([[1.0, np.nan]]), "y": np.array([0])}, "NaN"),
        ({"x": np.array([["a"]]), "y": np.array([0])}, "numeric"),
        ({"x": np.ones((2, 2)), "y": np.zeros((2, 2), int)}, "shape"),
    ],
)
def test_npz_broken_content(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises((ValueError, TypeError), match=message) as info:
        data.load_npz(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "content",
    [b"", b"not a zip file at all", b"PK\x03\x04 truncated zip"],
)
def test_npz_not_an_archive(tmp_path, content):
    path = write(tmp_path / "bad.npz", content)
    with raises_about(path, ValueError):
        data.load(str(path))


def test_npz_pickled_object_array_is_refused(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object), y=np.array([0]))
    with raises_about(path, ValueError):
        data.load_npz(path)


def test_npz_single_npy_array(tmp_path):
    path = tmp_path / "one.npz"
    with path.open("wb") as file:
        np.save(file, np.ones(3))
    with pytest.raises(ValueError, match="one array"):
        data.load_npz(path)


# --------------------------------------------------------------------------- csv


@pytest.mark.parametrize("gzipped", [False, True])
def test_csv_with_header_and_label_by_name(tmp_path, gzipped):
    text = "label,a,b\n1,0.5,2\n0,1.5,3\n2,-1,4e1\n"
    path = write(tmp_path / ("d.csv.gz" if gzipped else "d.csv"), text, gzipped=gzipped)
    loaded = data.load(str(path), label_column="label", task="classification")
    np.testing.assert_array_equal(loaded.x, [[0.5, 2], [1.5, 3], [-1, 40]])
    np.testing.assert_array_equal(loaded.y, [1, 0, 2])
    assert loaded.n_classes == 3 and loaded.x.dtype == np.float32


def test_csv_header_detected_and_last_column_default(tmp_path):
    path = write(tmp_path / "d.csv", "x1, x2 ,y\n1,2,0\n3,4,1\n")
    loaded = data.load_csv(path)
    np.testing.assert_array_equal(loaded.x, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(loaded.y, [0, 1])


def test_csv_without_header_label_by_index(tmp_path):
    path = write(tmp_path / "d.csv", "3,1,2\n0,4,5\n\n1,7,8\n")
    loaded = data.load_csv(path, label_column=0, task="classification")
    np.testing.assert_array_equal(loaded.x, [[1, 2], [4, 5], [7, 8]])
    np.testing.assert_array_equal(loaded.y, [2, 0, 1])
    assert loaded.classes == [0, 1, 3]  # the values that occur: no label value sizes an array
    # header=True would swallow the first sample:
    assert data.load_csv(path, label_column=0, header=True).x.shape == (2, 2)


def test_csv_numeric_header_is_detected_by_the_label(tmp_path):
    path = write(tmp_path / "d.csv", "0,1,label\n5,6,1\n7,8,0\n")
    assert data.load_csv(path).x.shape == (2, 2)


def test_csv_gzip_is_detected_by_magic_bytes_not_extension(tmp_path):
    path = write(tmp_path / "plain-name.csv", "1,2,0\n3,4,1\n", gzipped=True)
    assert data.load_csv(path).x.shape == (2, 2)


def test_csv_float_labels_are_regression(tmp_path):
    path = write(tmp_path / "r.csv", "1,2,0.5\n3,4,2.0\n5,6,3\n")
    loaded = data.load(str(path))
    assert loaded.n_classes is None and loaded.y.dtype == np.float32
    np.testing.assert_array_equal(loaded.y, [0.5, 2.0, 3.0])


def test_csv_class_names_become_sorted_indices(tmp_path):
    path = write(tmp_path / "iris.csv", 'a,b,species\n1,2,virginica\n3,4,"setosa"\n5,6,virginica\n')
    loaded = data.load_csv(path)
    np.testing.assert_array_equal(loaded.y, [1, 0, 1])
    assert loaded.n_classes == 2


@pytest.mark.parametrize(
    "text, kwargs, error, message",
    [
        ("1,2,0\n3,4\n", {}, ValueError, r"line 2: expected 3 fields"),
        ("1,2,0\n3,4,1,5\n", {}, ValueError, r"line 2: expected 3 fields"),
        ("1,2,0\n3,x,1\n", {}, ValueError, r"line 2, column index 1 mixes numbers with text"),
        (
            "a,b,y\n1,,0\n",
            {},
            ValueError,
            r"1 missing values .* in columns 'b' \(1\); first at lines 2;",
        ),
        ("1,2,0\n3,4,\n", {}, ValueError, r"1 missing values .*index 2 \(1\)"),
        ("", {}, ValueError, r"no rows"),
        ("\n\n", {}, ValueError, r"no rows"),
        ("a,b,y\n", {}, ValueError, r"no data rows"),
        ("1\n2\n", {}, ValueError, r"at least two columns"),
        ("1,2,nan\n", {}, ValueError, r"missing values"),
        (
            "1,inf,0\n",
            {},
            ValueError,
            r"line 1, column index 1: expected a finite number within float32's range, got 'inf'",
        ),
    ],
)
def test_csv_broken_files(tmp_path, text, kwargs, error, message):
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(error, match=message) as info:
        data.load_csv(path, **kwargs)
    assert str(info.value).startswith(str(path))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"label_column": "missing"}, ValueError, r"label_column: no column named 'missing'"),
        ({"label_column": "y", "header": False}, ValueError, r"label_column: 'y' names a column"),
        ({"label_column": 3}, ValueError, r"label_column: expected an index in \[-3, 3\)"),
        ({"label_column": 1.0}, TypeError, r"label_column: expected a column name or index"),
        ({"header": "yes"}, TypeError, r"header: expected True, False or None"),
    ],
)
def test_csv_bad_arguments(tmp_path, kwargs, error, message):
    path = write(tmp_path / "d.csv", "a,b,y\n1,2,0\n")
    with pytest.raises(error, match=message):
        data.load_csv(path, **kwargs)


def test_csv_damaged_gzip_and_binary(tmp_path):
    damaged = write(tmp_path / "d.csv.gz", gzip.compress(b"1,2,0\n" * 100)[:30])
    with raises_about(damaged, ValueError):
        data.load(str(damaged))
    binary = write(tmp_path / "b.csv", b"\xff\xfe\x00garbage")
    with raises_about(binary, ValueError):
        data.load(str(binary))


# --------------------------------------------------------------------------- idx


@pytest.mark.parametrize("gzip_images, gzip_labels", [(False, False), (True, False), (True, True)])
def test_idx_round_trip(mnist_like, gzip_images, gzip_labels):
    tmp_path, images, labels = mnist_like
    # Names without .gz for gzipped files: the loader goes by the magic bytes.
    images_path = write(tmp_path / "images-idx3-ubyte", idx_bytes(images), gzipped=gzip_images)
    labels_path = write(tmp_path / "labels-idx1-ubyte", idx_bytes(labels), gzipped=gzip_labels)
    loaded = data.load(str(images_path), labels=str(labels_path))
    assert loaded.x.shape == (7, 12) and loaded.x.dtype == np.float32
    np.testing.assert_array_equal(loaded.x, images.reshape(7, 12))
    # The classes are the labels that occur (0, 1, 2, 3, 9): no label value sizes an array.
    assert loaded.classes == [0, 1, 2, 3, 9] and loaded.n_classes == 5
    np.testing.assert_array_equal(np.asarray(loaded.classes)[loaded.y], labels)
    assert loaded.y.dtype == np.int64
    assert loaded.name == "images-idx3-ubyte"


def test_idx_big_endian_float_images(mnist_like):
    tmp_path, images, labels = mnist_like
    values = images.astype(np.float32) / 255
    images_path = write(tmp_path / "i.idx", idx_bytes(values, 0x0D))
    labels_path = write(tmp_path / "l.idx", idx_bytes(labels.astype(np.int32), 0x0C))
    loaded = data.load_idx(images_path, labels_path)
    np.testing.assert_array_equal(loaded.x, values.reshape(7, 12))
    np.testing.assert_array_equal(np.asarray(loaded.classes)[loaded.y], labels)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda b: b[:-5], r"IDX data truncated.*\(7, 3, 4\)"),
        (lambda b: b + b"\x00", r"trailing bytes"),
        (lambda b: b[:10], r"truncated IDX header"),
        (lambda b: b"\x01\x02" + b[2:], r"not an IDX file.*01 02 08 03"),
        (lambda b: b[:2] + b"\x42" + b[3:], r"unknown IDX dtype code 0x42"),
        (lambda b: b[:3] + b"\x00", r"0 dimensions"),
        (lambda b: b"", r"empty file"),
        (lambda b: gzip.compress(b)[:40], r"damaged gzip"),
    ],
)
def test_idx_broken_images(mnist_like, corrupt, message):
    tmp_path, images, labels = mnist_like
    images_path = write(tmp_path / "images", corrupt(idx_bytes(images)))
    labels_path = write(tmp_path / "labels", idx_bytes(labels))
    with pytest.raises(ValueError, match=message) as info:
        data.load_idx(images_path, labels_path)
    assert str(info.value).startswith(str(images_path))


def test_idx_swapped_or_mismatched_files(mnist_like):
    tmp_path, images, labels = mnist_like
    images_path = write(tmp_path / "images", idx_bytes(images))
    labels_path = write(tmp_path / "labels", idx_bytes(labels))
    with pytest.raises(ValueError, match="labels file"):
        data.load_idx(labels_path, images_path)
    short = write(tmp_path / "short", idx_bytes(labels[:5]))
    with pytest.raises(ValueError, match="5 labels but .* 7 images"):
        data.load_idx(images_path, short)


# --------------------------------------------------------------------------- load()


def test_load_unknown_name_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match=r"^source: unknown dataset 'mnist'.*digits"):
        data.load("mnist")
    missing = tmp_path / "nope.csv"
    with raises_about(missing, FileNotFoundError) as info:
        data.load(str(missing))
    assert isinstance(info.value, ValueError)  # one except ValueError catches every data error
    images = write(tmp_path / "images", idx_bytes(np.zeros((1, 2, 2), np.uint8)))
    with raises_about(tmp_path / "labels", data.DataFileNotFoundError):
        data.load(str(images), labels=str(tmp_path / "labels"))


def test_load_unknown_format_and_idx_without_labels(tmp_path):
    text = write(tmp_path / "notes.txt", "hello")
    with pytest.raises(ValueError, match=r"^source: cannot tell the format"):
        data.load(str(text))
    images = write(
        tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(np.zeros((1, 2, 2))), gzipped=True
    )
    with pytest.raises(ValueError, match=r"^labels: .* is an IDX file"):
        data.load(str(images))
    with pytest.raises(TypeError, match=r"^source:"):
        data.load(3)
    with pytest.raises(ValueError, match=r"^labels:"):
        data.load("digits", labels="x")


# --------------------------------------------------------------------------- split


def rows_of(x: np.ndarray) -> list[int]:
    return sorted(x[:, 0].astype(int).tolist())


def test_split_partitions_rows_with_the_requested_sizes():
    n = 103
    x = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    y = np.arange(n) % 4
    parts = data.split(x, y, seed=3, validation=0.1, test=0.25)
    assert (len(parts.x_train), len(parts.x_val), len(parts.x_test)) == (n - 11 - 26, 11, 26)
    assert sorted(rows_of(parts.x_train) + rows_of(parts.x_val) + rows_of(parts.x_test)) == list(
        range(n)
    )
    for xs, ys in [
        (parts.x_train, parts.y_train),
        (parts.x_val, parts.y_val),
        (parts.x_test, parts.y_test),
    ]:
        np.testing.assert_array_equal(ys, xs[:, 0].astype(int) % 4)  # rows stay with their labels


def test_split_is_seeded():
    x, y = np.arange(50.0)[:, None], np.arange(50) % 2
    same = data.split(x, y, seed=7), data.split(x, y, seed=7)
    for a, b in zip(*same, strict=True):
        np.testing.assert_array_equal(a, b)
    other = data.split(x, y, seed=8)
    assert not np.array_equal(same[0].x_test, other.x_test)


def test_split_is_stratified_on_digits():
    digits = data.load_digits()
    parts = data.split(digits.x, digits.y, seed=0, validation=0.1, test=0.2)
    whole = np.bincount(digits.y) / len(digits.y)
    for ys in (parts.y_train, parts.y_val, parts.y_test):
        expected = whole * len(ys)
        assert np.all(np.abs(np.bincount(ys, minlength=10) - expected) <= 1), (ys, expected)


def test_split_stratifies_imbalanced_classes():
    y = np.array([0] * 90 + [1] * 10)
    for seed in range(5):
        parts = data.split(np.zeros((100, 1)), y, seed=seed, validation=0.2, test=0.3)
        assert np.bincount(parts.y_test).tolist() == [27, 3]
        assert np.bincount(parts.y_val).tolist() == [18, 2]
    unstratified = [
        np.bincount(data.split(np.zeros((100, 1)), y, seed=s, stratify=False).y_test, minlength=2)[
            1
        ]
        for s in range(20)
    ]
    assert len(set(unstratified)) > 1


def test_split_without_validation_and_with_regression_targets():
    x, y = np.ones((10, 4), np.float32), np.linspace(0, 1, 10).astype(np.float32)
    parts = data.split(x, y, validation=0, test=0.3)
    assert parts.x_val.shape == (0, 4) and parts.y_val.shape == (0,)
    assert parts.x_test.shape == (3, 4) and parts.x_train.shape == (7, 4)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"test": 1.0}, ValueError, r"^test: expected a fraction in \[0, 1\)"),
        ({"validation": -0.1}, ValueError, r"^validation: expected a fraction"),
        ({"validation": 0.5, "test": 0.5}, ValueError, r"^validation, test: .*less than 1"),
        ({"test": "0.2"}, TypeError, r"^test:"),
        ({"seed": 1.5}, TypeError, r"^seed:"),
        ({"validation": 0.4, "test": 0.4, "n": 4}, ValueError, r"no training rows"),
        ({"y_rows": 9}, ValueError, r"^y: expected 10 rows"),
    ],
)
def test_split_bad_arguments(kwargs, error, message):
    n = kwargs.pop("n", 10)
    x, y = np.zeros((n, 2)), np.zeros(kwargs.pop("y_rows", n), int)
    with pytest.raises(error, match=message):
        data.split(x, y, **kwargs)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    n=st.integers(3, 200),
    n_classes=st.integers(1, 6),
    validation=st.sampled_from([0.0, 0.1, 0.25]),
    test=st.sampled_from([0.0, 0.15, 0.3]),
    seed=st.integers(0, 2**31),
    stratify=st.booleans(),
)
def test_split_property_partition(n, n_classes, validation, test, seed, stratify):
    x = np.arange(n, dtype=np.float64)[:, None]
    y = np.arange(n) % n_classes
    try:
        parts = data.split(x, y, seed=seed, validation=validation, test=test, stratify=stratify)
    except ValueError as error:
        assert "no training rows" in str(error)
        return
    sizes = [len(parts.x_train), len(parts.x_val), len(parts.x_test)]
    assert sizes[1:] == [int(np.ceil(round(validation * n, 9))), int(np.ceil(round(test * n, 9)))]
    combined = np.concatenate([parts.x_train, parts.x_val, parts.x_test])[:, 0]
    np.testing.assert_array_equal(np.sort(combined), np.arange(n))
    if stratify:
        counts = np.bincount(y, minlength=n_classes)
        for ys in (parts.y_val, parts.y_test):
            got = np.bincount(ys, minlength=n_classes)
            assert np.all(np.abs(got - counts * len(ys) / n) <= 1.5)


# --------------------------------------------------------------------------- standardize


def test_standardizer_fits_train_only_and_keeps_constant_features():
    digits = data.load_digits()
    parts = data.split(digits.x, digits.y, seed=0)
    standardize = data.fit_standardizer(parts.x_train)
    x_train = standardize(parts.x_train)
    assert x_train.dtype == np.float32 and np.all(np.isfinite(x_train))
    varying = parts.x_train.std(axis=0) > 0
    np.testing.assert_allclose(x_train[:, varying].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(x_train[:, varying].std(axis=0), 1, atol=1e-4)
    assert np.all(standardize.std[~varying] == 1)
    assert np.all(x_train[:, ~varying] == 0)
    x_test = standardize(parts.x_test)  # uses the training statistics: not exactly mean 0
    assert np.all(np.isfinite(x_test)) and np.abs(x_test.mean()) > 1e-4


def test_standardizer_formula_and_jax_input():
    standardize = data.fit_standardizer(np.array([[1.0, 7.0], [3.0, 7.0]]))
    np.testing.assert_array_equal(standardize.mean, [2.0, 7.0])
    np.testing.assert_array_equal(standardize.std, [1.0, 1.0])
    np.testing.assert_array_equal(standardize(np.array([[5.0, 8.0]])), [[3.0, 1.0]])
    out = standardize(jnp.array([[5.0, 8.0]]))
    assert isinstance(out, jnp.ndarray) and out.tolist() == [[3.0, 1.0]]
    with pytest.raises(ValueError, match=r"^x: expected 2 features"):
        standardize(np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"^x_train:"):
        data.fit_standardizer(np.ones(3))
    with pytest.raises(ValueError, match=r"^x_train: .*NaN"):
        data.fit_standardizer(np.array([[np.nan]]))


# --------------------------------------------------------------------------- one_hot, shards


def test_one_hot():
    np.testing.assert_array_equal(data.one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    assert data.one_hot(np.array([1]), 2).dtype == np.float32
    with pytest.raises(ValueError, match=r"^labels: expected values in \[0, 3\)"):
        data.one_hot(np.array([3]), 3)
    with pytest.raises(TypeError, match=r"^labels:"):
        data.one_hot(np.array([0.5]), 3)
    with pytest.raises(ValueError, match=r"^n_classes:"):
        data.one_hot(np.array([0]), 0)


@pytest.mark.parametrize("n, count", [(10, 3), (12, 4), (5, 5), (7, 1)])
def test_shards_are_equal_contiguous_and_disjoint(n, count):
    x, y = np.arange(n)[:, None] * np.ones((1, 2)), np.arange(n)
    shards = [
        data.shard_for_process(x, y, process_index=i, process_count=count) for i in range(count)
    ]
    assert {s[0].shape for s in shards} == {(n // count, 2)}
    together = np.concatenate([s[1] for s in shards])
    np.testing.assert_array_equal(together, np.arange(n - n % count))  # the remainder is dropped
    for xs, ys in shards:
        np.testing.assert_array_equal(xs[:, 0], ys)


def test_shard_defaults_to_this_process_and_checks_arguments():
    x, y = np.ones((4, 2)), np.arange(4)
    np.testing.assert_array_equal(data.shard_for_process(x, y)[1], y)  # one process here
    with pytest.raises(ValueError, match=r"^process_index: expected an integer in \[0, 2\)"):
        data.shard_for_process(x, y, process_index=2, process_count=2)
    with pytest.raises(ValueError, match=r"^process_count:"):
        data.shard_for_process(x, y, process_index=0, process_count=0)
    with pytest.raises(ValueError, match=r"cannot give each of 5"):
        data.shard_for_process(x, y, process_index=0, process_count=5)
    with pytest.raises(ValueError, match=r"^x, y:"):
        data.shard_for_process(x, y[:3], process_index=0, process_count=1)
    with pytest.raises(TypeError, match=r"^process_index:"):
        data.shard_for_process(x, y, process_index=True, process_count=2)
