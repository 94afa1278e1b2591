"""Datasets as NumPy arrays: loaders, a bundled real dataset, splits, standardisation, sharding.

Everything here runs on the host, before training: a loader returns a :class:`Dataset` of
``x: float32 (n, d)`` (images flattened) and ``y``, either ``int64`` class labels ``0..C-1``
(classification) or ``float32`` targets (regression). :func:`split` cuts it into seeded,
stratified train / validation / test parts; :func:`fit_standardizer` learns the
per-feature mean and standard deviation on the training part only; :func:`shard_for_process`
gives each host of a multi-host run its equal share of the rows.

Example:
    >>> from fungrad import data
    >>> digits = data.load("digits")
    >>> parts = data.split(digits.x, digits.y, seed=0, validation=0.1, test=0.2)
    >>> standardize = data.fit_standardizer(parts.x_train)
    >>> x_train = standardize(parts.x_train)
    >>> x_train.shape, digits.n_classes
    ((1257, 64), 10)
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import warnings
import zipfile
import zlib
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

__all__ = [
    "Dataset",
    "DataFileNotFoundError",
    "Split",
    "Standardizer",
    "BUNDLED",
    "load",
    "load_digits",
    "load_npz",
    "load_csv",
    "load_idx",
    "split",
    "fit_standardizer",
    "one_hot",
    "shard_for_process",
]

PathLike = str | os.PathLike


class Dataset(NamedTuple):
    """A dataset in memory.

    Attributes:
        x: inputs, float32 ``(n, d)``; images are flattened row by row.
        y: int64 class labels ``(n,)`` in ``0..n_classes-1``, or float32 regression targets
            ``(n,)`` or ``(n, k)``.
        name: where it came from (the bundled name or the file name).
        n_classes: the number of classes for integer labels, else ``None``.
        classes: the class labels as they appear in the data, in the order of their indices
            (``classes[y[i]]`` is row ``i``'s label), or ``None`` for regression.
        features: the feature column names (a CSV's header), or ``None`` if the file has none.
    """

    x: np.ndarray
    y: np.ndarray
    name: str
    n_classes: int | None
    classes: list | None = None
    features: list[str] | None = None


class DataFileNotFoundError(FileNotFoundError, ValueError):
    """A data file does not exist. Its message starts with the path.

    It is both a ``FileNotFoundError`` and a ``ValueError``, so either ``except`` catches it.
    """


# --------------------------------------------------------------------------- arrays


def _features(x: np.ndarray, where: str) -> np.ndarray:
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{where}: expected numeric inputs, got dtype {x.dtype}")
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"{where}: expected a non-empty array of samples, got shape {x.shape}")
    x = x.reshape(x.shape[0], -1).astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{where}: inputs contain NaN or infinity (or values beyond float32)")
    return x


def _targets(y: np.ndarray, where: str) -> tuple[np.ndarray, int | None, list | None]:
    """Integer or string labels become class indices; floats stay regression targets.

    Non-negative integer labels are taken as class indices as they are (``n_classes = max +
    1``), so two files of one problem agree even when one lacks a class. Labels with negative
    values (``-1/+1``) and class names are replaced by their index in the sorted unique values.
    """
    if y.dtype.kind in "biuUS":
        if y.ndim != 1:
            raise ValueError(f"{where}: expected class labels of shape (n,), got shape {y.shape}")
        if y.dtype.kind in "US" or (y.size and y.min() < 0):
            classes, y = np.unique(y, return_inverse=True)
            return y.reshape(-1).astype(np.int64), len(classes), classes.tolist()
        y = y.astype(np.int64)
        n_classes = int(y.max()) + 1 if y.size else 0
        return y, n_classes, list(range(n_classes))
    if y.dtype.kind == "f":
        if y.ndim not in (1, 2):
            raise ValueError(
                f"{where}: expected regression targets of shape (n,) or (n, k), got {y.shape}"
            )
        y = y.astype(np.float32)
        if not np.all(np.isfinite(y)):
            raise ValueError(f"{where}: targets contain NaN or infinity")
        return y, None, None
    raise TypeError(
        f"{where}: expected integer class labels, class names or float targets, got dtype {y.dtype}"
    )


def _dataset(
    x: np.ndarray, y: np.ndarray, name: str, where: str, features: list[str] | None = None
) -> Dataset:
    x = _features(x, where)
    y, n_classes, classes = _targets(y, where)
    if y.shape[0] != x.shape[0]:
        raise ValueError(
            f"{where}: inputs have {x.shape[0]} rows but labels have {y.shape[0]}; "
            "expected one label per row"
        )
    return Dataset(x, y, name, n_classes, classes, features)


# --------------------------------------------------------------------------- files


def _path(path: PathLike, argname: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"{argname}: expected a path (str or os.PathLike), got {type(path).__name__}"
        )
    path = Path(path)
    if not path.exists():
        raise DataFileNotFoundError(f"{path}: no such file ({argname})")
    if path.is_dir():
        raise ValueError(f"{path}: expected a file, got a directory ({argname})")
    return path


def _read(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic bytes ``1f 8b``."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(f"{path}: damaged gzip data ({error})") from error
    return data


def load_digits() -> Dataset:
    """The bundled UCI handwritten digits: 1797 8x8 images, pixels 0..16, 10 classes.

    "Optical Recognition of Handwritten Digits" by E. Alpaydin and C. Kaynak, UCI Machine
    Learning Repository (CC BY 4.0, https://doi.org/10.24432/C50P49), the copy distributed
    with scikit-learn. Pixel values are kept as they are (0..16, float32); standardise with
    :func:`fit_standardizer`.

    Returns:
        A :class:`Dataset` with ``x`` float32 ``(1797, 64)`` and ``y`` int64 ``(1797,)``.
    """
    source = resources.files("fungrad").joinpath("datasets", "digits.npz")
    with source.open("rb") as file, np.load(file, allow_pickle=False) as arrays:
        x, y = arrays["x"], arrays["y"]
    return Dataset(x.astype(np.float32), y.astype(np.int64), "digits", 10, list(range(10)))


BUNDLED = {"digits": load_digits}
"""The datasets shipped with fungrad, by the name :func:`load` knows them by."""


def load_npz(path: PathLike) -> Dataset:
    """A dataset from a NumPy ``.npz`` archive holding arrays ``"x"`` and ``"y"``.

    ``x`` may have any numeric dtype and shape ``(n, ...)`` (flattened to ``(n, d)``); integer
    ``y`` are class labels, float ``y`` regression targets.

    Raises:
        DataFileNotFoundError: if the file does not exist.
        ValueError, TypeError: if it is not an ``.npz`` archive, lacks ``x`` or ``y``, or their
            values or lengths are wrong.
    """
    path = _path(path, "path")
    damaged = (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error)
    # np.load is given an open file, not the path: it leaks its own handle when the zip is bad.
    with path.open("rb") as file:
        try:
            arrays = np.load(file, allow_pickle=False)
        except damaged as error:
            raise ValueError(f"{path}: not a readable .npz archive ({error})") from error
        if not isinstance(arrays, np.lib.npyio.NpzFile):
            raise ValueError(
                f"{path}: expected an .npz archive of arrays 'x' and 'y', got one array"
            )
        with arrays:
            missing = [name for name in ("x", "y") if name not in arrays.files]
            if missing:
                raise ValueError(
                    f"{path}: expected arrays 'x' and 'y', missing "
                    f"{', '.join(map(repr, missing))} "
                    f"(it holds: {', '.join(map(repr, arrays.files)) or 'nothing'})"
                )
            try:
                x, y = arrays["x"], arrays["y"]
            except damaged as error:
                raise ValueError(f"{path}: damaged array in the .npz archive ({error})") from error
    return _dataset(x, y, path.name, str(path))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_rows(text: str):
    """Non-blank csv rows with their line numbers, fields stripped."""
    reader = csv.reader(io.StringIO(text))
    for row in reader:
        row = [field.strip() for field in row]
        if any(row):
            yield reader.line_num, row


def _label_index(label_column: str | int, header: list[str] | None, width: int, path: Path) -> int:
    if isinstance(label_column, str):
        if header is None:
            raise ValueError(
                f"label_column: {label_column!r} names a column, which needs a header row; "
                f"{path} is read without one (header=False)"
            )
        if label_column not in header:
            raise ValueError(
                f"label_column: no column named {label_column!r} in {path}; "
                f"columns: {', '.join(header)}"
            )
        return header.index(label_column)
    if isinstance(label_column, bool) or not isinstance(label_column, int):
        raise TypeError(
            f"label_column: expected a column name or index, got {type(label_column).__name__}"
        )
    if not -width <= label_column < width:
        raise ValueError(
            f"label_column: expected an index in [{-width}, {width}) for {path}, "
            f"which has {width} columns, got {label_column}"
        )
    return label_column % width


def _find_csv_error(text: str, skip: int, width: int, label: int, path: Path) -> None:
    """Raise a precise error for the first ragged row or non-numeric feature, if any."""
    for line, row in _csv_rows(text):
        if line <= skip:
            continue
        if len(row) != width:
            raise ValueError(
                f"{path}: line {line}: expected {width} fields like the first row, got {len(row)}"
            )
        for column, field in enumerate(row):
            if column != label and not _is_number(field):
                raise ValueError(
                    f"{path}: line {line}, column {column + 1}: expected a number, got {field!r}"
                )


def load_csv(
    path: PathLike, *, label_column: str | int = -1, header: bool | None = None
) -> Dataset:
    """A dataset from a comma-separated file (gzipped or not): one sample per row.

    Every column except the label column is a numeric feature. The label column decides the
    task: integers (``3``) are class labels, other numbers (``3.0``, ``0.25``) regression
    targets, and any non-numeric value makes the column class names. Class names and negative
    integers are replaced by their index in the sorted unique values; non-negative integers are
    kept as they are, with ``n_classes = max + 1``.

    Args:
        path: the file; gzip is detected by its first bytes, not by the extension.
        label_column: the label column's name (needs a header row) or index (negative counts
            from the end; default the last column).
        header: whether the first row names the columns; ``None`` detects it (a header has a
            non-numeric feature field, or a non-numeric label above a numeric one). With a
            column name for ``label_column``, ``None`` means ``True``.

    Returns:
        A :class:`Dataset` named after the file.

    Raises:
        DataFileNotFoundError: if the file does not exist.
        ValueError, TypeError: for an empty or ragged file, a non-numeric feature, a bad
            ``label_column`` or non-finite values.
    """
    path = _path(path, "path")
    if header is not None and not isinstance(header, bool):
        raise TypeError(f"header: expected True, False or None, got {header!r}")
    try:
        text = _read(path).decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: expected UTF-8 text ({error})") from error
    try:
        rows = _csv_rows(text)
        first_line, first = next(rows)
        second = next(rows, (None, None))[1]
    except StopIteration:
        raise ValueError(f"{path}: no rows; expected comma-separated samples") from None
    except csv.Error as error:
        raise ValueError(f"{path}: not valid CSV ({error})") from error
    width = len(first)
    if width < 2:
        raise ValueError(
            f"{path}: expected at least two columns (features and a label), got {width}"
        )
    if header is None:
        if isinstance(label_column, str):
            header = True
        else:
            label = _label_index(label_column, None, width, path)
            fields = [f for i, f in enumerate(first) if i != label]
            numeric_label_below = second is not None and len(second) == width
            numeric_label_below = numeric_label_below and _is_number(second[label])
            header = not all(map(_is_number, fields)) or (
                not _is_number(first[label]) and numeric_label_below
            )
    if header and second is None:
        raise ValueError(f"{path}: no data rows after the header")
    label = _label_index(label_column, first if header else None, width, path)
    skip = first_line if header else first_line - 1
    features = [i for i in range(width) if i != label]

    def read(columns, dtype):
        with warnings.catch_warnings():
            # Blank lines are skipped; NumPy warns that they are not counted as rows.
            warnings.filterwarnings("ignore", "Input line", UserWarning)
            return np.loadtxt(
                io.StringIO(text),
                delimiter=",",
                skiprows=skip,
                usecols=columns,
                dtype=dtype,
                comments=None,
                quotechar='"',
                ndmin=2 if dtype is np.float32 else 1,
            )

    try:
        try:
            table = read(None, np.float32)
            x, numeric_labels = table[:, features], table[:, label]
        except ValueError:
            _find_csv_error(text, skip, width, label, path)
            x, numeric_labels = read(features, np.float32), None
        labels = np.char.strip(read([label], str))
    except ValueError as error:
        if str(error).startswith(str(path)):
            raise
        raise ValueError(f"{path}: cannot read as CSV ({error})") from error
    empty = np.flatnonzero(np.char.str_len(labels) == 0)
    if empty.size:
        raise ValueError(f"{path}: data row {empty[0] + 1} has an empty label (column {label + 1})")
    try:
        y = labels.astype(np.int64)
    except (ValueError, OverflowError):
        y = labels if numeric_labels is None else numeric_labels
    names = [name for i, name in enumerate(first) if i != label] if header else None
    return _dataset(x, y, path.name, str(path), names)


_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_idx(path: Path) -> np.ndarray:
    """One IDX array: magic ``00 00 <dtype code> <ndim>``, ndim big-endian uint32 sizes, data."""
    data = _read(path)
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise ValueError(
            f"{path}: not an IDX file; expected the magic bytes 00 00 <dtype> <ndim>, "
            f"got {data[:4].hex(' ') or 'an empty file'}"
        )
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        valid = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise ValueError(f"{path}: unknown IDX dtype code 0x{code:02X}; expected one of {valid}")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions; expected at least 1")
    body = 4 + 4 * ndim
    if len(data) < body:
        raise ValueError(f"{path}: truncated IDX header; expected {body} bytes, got {len(data)}")
    shape = tuple(int(size) for size in np.frombuffer(data, ">u4", ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    if len(data) - body != expected:
        problem = "truncated" if len(data) - body < expected else "has trailing bytes"
        raise ValueError(
            f"{path}: IDX data {problem}: the header declares shape {shape} of {dtype.name}, "
            f"{expected} bytes, but {len(data) - body} follow it"
        )
    return np.frombuffer(data, dtype, offset=body).reshape(shape).astype(dtype.newbyteorder("="))


def load_idx(images_path: PathLike, labels_path: PathLike) -> Dataset:
    """A dataset from MNIST-style IDX files: images ``(n, rows, cols)`` and labels ``(n,)``.

    Either file may be gzipped (detected by its first bytes). The header (magic number, dtype
    code, dimensions) is checked against the data. Images are flattened to ``(n, rows *
    cols)`` float32 with their values unchanged (0..255 for MNIST).

    Raises:
        DataFileNotFoundError: if a file does not exist.
        ValueError: for a damaged or truncated file, swapped files or mismatched lengths.
    """
    images_path = _path(images_path, "images_path")
    labels_path = _path(labels_path, "labels_path")
    images, labels = _read_idx(images_path), _read_idx(labels_path)
    if images.ndim < 2:
        raise ValueError(
            f"{images_path}: expected IDX images (n, rows, cols), got shape {images.shape} "
            "(is it the labels file?)"
        )
    if labels.ndim != 1:
        raise ValueError(
            f"{labels_path}: expected IDX labels (n,), got shape {labels.shape} "
            "(is it the images file?)"
        )
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{labels_path}: holds {labels.shape[0]} labels but {images_path} holds "
            f"{images.shape[0]} images; expected one label per image"
        )
    return _dataset(images, labels, images_path.name, str(images_path))


def _looks_like_idx(path: Path) -> bool:
    with path.open("rb") as file:
        start = file.read(4)
    if start[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path) as file:
                start = file.read(4)
        except (OSError, EOFError, zlib.error):
            return False
    return len(start) == 4 and start[:2] == b"\x00\x00" and start[2] in _IDX_DTYPES


def load(source: str, *, label_column: str | int = -1, labels: str | None = None) -> Dataset:
    """Load a dataset by bundled name or from a file, choosing the loader by format.

    Args:
        source: a bundled dataset name (``"digits"``), or a path to an ``.npz`` archive
                (:func:`load_npz`), a ``.csv`` / ``.csv.gz`` file (:func:`load_csv`), or an IDX
                images file (:func:`load_idx`, with ``labels``).
        label_column: the CSV label column, by name or index.
        labels: the IDX labels file that goes with an IDX images ``source``.

    Returns:
        A :class:`Dataset`.

    Raises:
        DataFileNotFoundError: if a file does not exist (the message starts with its path).
        ValueError, TypeError: for an unknown name or format, or a broken file.

    Example:
        >>> load("digits").x.shape
        (1797, 64)
    """
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source: expected a dataset name or a path, got {type(source).__name__}")
    names = ", ".join(BUNDLED)
    formats = (
        f"a bundled dataset name ({names}), or a path to a .npz, .csv or .csv.gz file, "
        "or to an IDX images file with labels=<IDX labels file>"
    )
    if isinstance(source, str) and source in BUNDLED:
        if labels is not None:
            raise ValueError(f"labels: only IDX images files take a labels file, not {source!r}")
        return BUNDLED[source]()
    path = Path(source)
    if not path.exists():
        if isinstance(source, str) and len(path.parts) == 1 and not path.suffix:
            raise ValueError(f"source: unknown dataset {source!r}; expected {formats}")
        raise DataFileNotFoundError(f"{path}: no such file (source)")
    if labels is not None:
        _path(source, "source")
        return load_idx(source, _path(labels, "labels"))
    name = path.name.lower()
    if name.endswith(".npz"):
        return load_npz(path)
    if name.endswith((".csv", ".csv.gz")):
        return load_csv(path, label_column=label_column)
    if path.is_file() and _looks_like_idx(path):
        raise ValueError(
            f"labels: {path} is an IDX file; pass labels=<path of the IDX labels file> "
            "to load it with its labels"
        )
    raise ValueError(f"source: cannot tell the format of {path}; expected {formats}")


# --------------------------------------------------------------------------- splits


class Split(NamedTuple):
    """Train, validation and test parts of one dataset (NumPy arrays, rows in random order)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _fraction(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name}: expected a fraction in [0, 1), got {type(value).__name__}")
    if not 0 <= value < 1:
        raise ValueError(f"{name}: expected a fraction in [0, 1), got {value}")
    return float(value)


def _stratified_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random order in which every prefix holds each class in proportion (within one).

    The ``r``-th of the ``n_c`` samples of class ``c`` gets the position ``(r + 1/2) / n_c``
    in ``[0, 1)``; sorting all samples by position spreads each class evenly over the order.
    """
    shuffled = rng.permutation(labels.shape[0])
    by_class = np.argsort(labels[shuffled], kind="stable")
    _, starts, counts = np.unique(labels[shuffled][by_class], return_index=True, return_counts=True)
    rank = np.arange(labels.shape[0]) - np.repeat(starts, counts)
    position = (rank + 0.5) / np.repeat(counts, counts)
    tiebreak = rng.permutation(labels.shape[0])
    return shuffled[by_class[np.lexsort((tiebreak, position))]]


def split(
    x: np.ndarray,
    y: np.ndarray,
    *,
    seed: int = 0,
    validation: float = 0.1,
    test: float = 0.2,
    stratify: bool = True,
) -> Split:
    """Cut ``(x, y)`` into seeded random train, validation and test parts.

    The test part gets ``ceil(test * n)`` rows, the validation part ``ceil(validation * n)``,
    the training part the rest. With ``stratify`` and integer labels, each part holds every
    class in the proportion of the whole (to within one sample per class); float targets are
    never stratified. The same seed gives the same split.

    Args:
        x: inputs ``(n, ...)``.
        y: labels or targets ``(n, ...)``.
        seed: the seed of the shuffle.
        validation: the fraction of rows for validation, in ``[0, 1)``; ``0`` gives empty
                ``x_val``, ``y_val`` (shape ``(0, d)``).
        test: the fraction of rows for testing, in ``[0, 1)``.
        stratify: keep the class proportions in every part (integer labels only).

    Returns:
        A :class:`Split`.

    Raises:
        ValueError, TypeError: for mismatched lengths, fractions outside ``[0, 1)`` or summing
                to 1 or more, or too few rows to leave a training part.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"x: expected a non-empty array of samples, got shape {x.shape}")
    if y.ndim < 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"y: expected {x.shape[0]} rows to match x, got shape {y.shape}")
    validation, test = _fraction("validation", validation), _fraction("test", test)
    if validation + test >= 1:
        raise ValueError(
            f"validation, test: expected fractions summing to less than 1, "
            f"got {validation} + {test} = {validation + test}"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed: expected an integer, got {type(seed).__name__}")
    n = x.shape[0]
    # Rounded first so that 0.1 * 30 = 3.0000000000000004 gives 3 rows, not 4.
    n_test, n_val = (math.ceil(round(f * n, 9)) for f in (test, validation))
    if n - n_test - n_val < 1:
        raise ValueError(
            f"x: {n} samples leave no training rows after test={test} ({n_test} rows) "
            f"and validation={validation} ({n_val} rows)"
        )
    rng = np.random.default_rng(seed)
    if stratify and y.ndim == 1 and y.dtype.kind in "biu":
        order = _stratified_order(y, rng)
    else:
        order = rng.permutation(n)
    test_rows = rng.permutation(order[:n_test])
    val_rows = rng.permutation(order[n_test : n_test + n_val])
    train_rows = rng.permutation(order[n_test + n_val :])
    return Split(x[train_rows], y[train_rows], x[val_rows], y[val_rows], x[test_rows], y[test_rows])


# --------------------------------------------------------------------------- preprocessing


class Standardizer(NamedTuple):
    """Per-feature standardisation ``x -> (x - mean) / std`` with statistics from training data."""

    mean: np.ndarray
    std: np.ndarray

    def __call__(self, x) -> np.ndarray:
        """Standardise ``x`` of shape ``(..., d)`` (NumPy in, float32 NumPy out; JAX arrays stay JAX)."""
        if not isinstance(x, jax.Array):
            x = np.asarray(x, dtype=np.float32)
        if x.ndim < 1 or x.shape[-1] != self.mean.shape[0]:
            raise ValueError(
                f"x: expected {self.mean.shape[0]} features (the training data's), "
                f"got shape {x.shape}"
            )
        return (x - self.mean) / self.std


def fit_standardizer(x_train: np.ndarray) -> Standardizer:
    """Learn the per-feature mean and standard deviation of the training inputs.

    Fit it on the training part only and apply it to every part, so that nothing about the
    validation or test rows leaks into training. A constant feature (digits has pixels that
    are always 0) keeps ``std = 1``: it maps to 0 instead of dividing by zero.

    Args:
        x_train: training inputs ``(n, d)``.

    Returns:
        A :class:`Standardizer` (float32 ``mean`` and ``std`` of shape ``(d,)``).

    Example:
        >>> s = fit_standardizer(np.array([[0.0, 5.0], [2.0, 5.0]]))
        >>> s(np.array([[1.0, 5.0]]))
        array([[0., 0.]], dtype=float32)
    """
    x = np.asarray(x_train)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"x_train: expected a non-empty (n, d) array, got shape {x.shape}")
    if x.dtype.kind not in "biuf":
        raise TypeError(f"x_train: expected numeric inputs, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("x_train: inputs contain NaN or infinity")
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(np.all(x == x[0], axis=0), 1.0, std)
    return Standardizer(mean.astype(np.float32), std.astype(np.float32))


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Class labels ``(...)`` as float32 one-hot rows ``(..., n_classes)``.

    Example:
        >>> one_hot(np.array([0, 2]), 3)
        array([[1., 0., 0.],
               [0., 0., 1.]], dtype=float32)
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)):
        raise TypeError(f"n_classes: expected a positive integer, got {type(n_classes).__name__}")
    if n_classes < 1:
        raise ValueError(f"n_classes: expected a positive integer, got {n_classes}")
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels: expected integer class labels, got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"labels: expected values in [0, {n_classes}), "
            f"got values in [{labels.min()}, {labels.max()}]"
        )
    return (labels[..., None] == np.arange(n_classes)).astype(np.float32)


def shard_for_process(
    x: np.ndarray,
    y: np.ndarray,
    *,
    process_index: int | None = None,
    process_count: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The contiguous block of rows this host feeds in multi-host data-parallel training.

    Every host loads (and splits, with the same seed) the same data, then keeps shard
    ``process_index`` of ``process_count`` equal shards: rows ``[i * m, (i + 1) * m)`` with
    ``m = n // process_count``. The last ``n % process_count`` rows are dropped, so every host
    has the same shapes (which SPMD programs need); shuffle before sharding so that the
    dropped rows are random ones.

    Args:
        x: inputs ``(n, ...)``, the same on every host.
        y: labels or targets ``(n, ...)``.
        process_index: this host's index; default ``jax.process_index()``.
        process_count: the number of hosts; default ``jax.process_count()``.

    Returns:
        ``(x_shard, y_shard)``, each with ``n // process_count`` rows.

    Example:
        >>> x, y = np.arange(10)[:, None], np.arange(10)
        >>> shard_for_process(x, y, process_index=1, process_count=3)[1]
        array([3, 4, 5])
    """
    if process_count is None:
        process_count = jax.process_count()
    if process_index is None:
        process_index = jax.process_index()
    for name, value in (("process_count", process_count), ("process_index", process_index)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    if process_count < 1:
        raise ValueError(f"process_count: expected a positive integer, got {process_count}")
    if not 0 <= process_index < process_count:
        raise ValueError(
            f"process_index: expected an integer in [0, {process_count}), got {process_index}"
        )
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim < 1 or y.ndim < 1 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x, y: expected the same number of rows, got shapes {x.shape} and {y.shape}"
        )
    size = x.shape[0] // process_count
    if size == 0:
        raise ValueError(
            f"x: {x.shape[0]} rows cannot give each of {process_count} processes at least one"
        )
    rows = slice(process_index * size, (process_index + 1) * size)
    return x[rows], y[rows]


# --------------------------------------------------------------------------- rows to predict on


def load_rows(
    source: str | os.PathLike,
    *,
    label_column: str | int = -1,
    labels: PathLike | None = None,
    features: list[str] | None = None,
    n_features: int,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Feature rows to predict on, and their labels when the file has them, read as in training.

    The format is chosen as :func:`load` chooses it: a bundled name, an ``.npz`` (``"x"``, and
    ``"y"`` if present), an IDX images file (with ``labels`` if given) or a ``.csv`` /
    ``.csv.gz``. A CSV file is matched to the training file's columns:

    * with ``features`` (the training file's header): the file needs a header naming every
      feature; its columns are put in the training order; the label column (``label_column``:
      a name, or an index into the training file's columns) may be there or not; any other
      column is an error.
    * without: each row holds ``n_features`` numbers, or ``n_features + 1`` fields with the
      label at ``label_column``'s index.

    Args:
        source: a bundled dataset name or a file path.
        label_column: the training file's label column, by name or index.
        labels: the IDX labels file that goes with an IDX images ``source``.
        features: the training file's feature column names, or ``None``.
        n_features: the number of features the model takes.

    Returns:
        ``(x, y)``: float32 rows ``(n, n_features)`` in the training column order, and the
        labels as they are in the file (class names stay strings, integers stay integers,
        CSV real numbers are float32), or ``None`` when the file has none.

    Raises:
        DataFileNotFoundError: if a file does not exist.
        ValueError, TypeError: for a width other than the training data's, missing or
            unexpected columns, a ragged row or a non-numeric feature (naming file and line).

    Example:
        >>> x, y = load_rows("digits", n_features=64)
        >>> x.shape, y[:3]
        ((1797, 64), array([0, 1, 2]))
    """
    if isinstance(n_features, bool) or not isinstance(n_features, (int, np.integer)):
        raise TypeError(f"n_features: expected a positive integer, got {n_features!r}")
    if n_features < 1:
        raise ValueError(f"n_features: expected a positive integer, got {n_features}")
    if features is not None and len(features) != n_features:
        raise ValueError(f"features: expected {n_features} names (n_features), got {len(features)}")
    if isinstance(source, str) and source in BUNDLED:
        if labels is not None:
            raise ValueError(f"labels: only IDX images files take a labels file, not {source!r}")
        dataset = BUNDLED[source]()
        y = dataset.y if dataset.classes is None else np.asarray(dataset.classes)[dataset.y]
        return _checked_width(dataset.x, n_features, source), y
    path = _rows_path(source)
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")) and labels is None:
        return _csv_prediction_rows(path, label_column, features, n_features)
    if name.endswith(".npz") and labels is None:
        x, y = _npz_rows(path)
    elif labels is not None or _looks_like_idx(path):
        x, y = _idx_rows(path, labels)
    else:
        raise ValueError(
            f"source: cannot tell the format of {path}; expected a bundled dataset name "
            f"({', '.join(BUNDLED)}), or a path to a .npz, .csv or .csv.gz file, or an IDX "
            "images file"
        )
    return _checked_width(x, n_features, str(path)), y


def _rows_path(source) -> Path:
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source: expected a dataset name or a path, got {type(source).__name__}")
    path = Path(source)
    if not path.exists() and isinstance(source, str) and len(path.parts) == 1 and not path.suffix:
        raise ValueError(
            f"source: unknown dataset {source!r}; expected {', '.join(BUNDLED)} or a file path"
        )
    return _path(source, "source")


def _checked_width(x: np.ndarray, n_features: int, where: str) -> np.ndarray:
    if x.shape[1] != n_features:
        raise ValueError(
            f"{where}: expected {n_features} features per row (the training data's), "
            f"got {x.shape[1]}"
        )
    return x


def _npz_rows(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """``"x"`` (and ``"y"`` if present) of an ``.npz`` archive."""
    damaged = (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error)
    with path.open("rb") as file:
        try:
            arrays = np.load(file, allow_pickle=False)
        except damaged as error:
            raise ValueError(f"{path}: not a readable .npz archive ({error})") from error
        if not isinstance(arrays, np.lib.npyio.NpzFile):
            raise ValueError(
                f"{path}: expected an .npz archive holding an array 'x', got one array"
            )
        with arrays:
            if "x" not in arrays.files:
                held = ", ".join(map(repr, arrays.files)) or "nothing"
                raise ValueError(f"{path}: expected an array 'x' of rows (it holds: {held})")
            try:
                x = arrays["x"]
                y = arrays["y"] if "y" in arrays.files else None
            except damaged as error:
                raise ValueError(f"{path}: damaged array in the .npz archive ({error})") from error
    x = _features(x, str(path))
    if y is not None and (y.ndim < 1 or y.shape[0] != x.shape[0]):
        raise ValueError(
            f"{path}: 'x' has {x.shape[0]} rows but 'y' has shape {y.shape}; "
            "expected one label per row"
        )
    return x, y


def _idx_rows(path: Path, labels: PathLike | None) -> tuple[np.ndarray, np.ndarray | None]:
    """An IDX images file's rows, flattened, and its labels file's labels if given."""
    images = _read_idx(path)
    if images.ndim < 2:
        raise ValueError(
            f"{path}: expected IDX images (n, rows, cols), got shape {images.shape} "
            "(is it the labels file?)"
        )
    x = _features(images, str(path))
    if labels is None:
        return x, None
    labels_path = _path(labels, "labels")
    y = _read_idx(labels_path)
    if y.shape != (x.shape[0],):
        raise ValueError(
            f"{labels_path}: expected {x.shape[0]} labels (n,) for the images of {path}, "
            f"got shape {y.shape}"
        )
    return x, y


def _csv_prediction_rows(
    path: Path, label_column: str | int, features: list[str] | None, n_features: int
) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        text = _read(path).decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: expected UTF-8 text ({error})") from error
    try:
        rows = _csv_rows(text)
        first_line, first = next(rows)
        has_second = next(rows, None) is not None
    except StopIteration:
        raise ValueError(f"{path}: no rows; expected comma-separated samples") from None
    except csv.Error as error:
        raise ValueError(f"{path}: not valid CSV ({error})") from error
    if features is None:
        columns, label = _unnamed_layout(path, first, first_line, label_column, n_features)
        skip = first_line - 1
    else:
        columns, label = _named_layout(path, first, first_line, label_column, features)
        if not has_second:
            raise ValueError(f"{path}: no data rows after the header")
        skip = first_line
    return _read_csv_columns(text, path, skip, len(first), columns, label)


def _unnamed_layout(path, first, first_line, label_column, n_features):
    """Feature columns and label column (or ``None``) of a file read without a header."""
    width = len(first)
    if width == n_features:
        return list(range(width)), None
    if width != n_features + 1:
        raise ValueError(
            f"{path}: line {first_line}: expected {n_features} features (the training data's), "
            f"or {n_features + 1} fields with the label, got {width} fields"
        )
    if isinstance(label_column, str):
        raise ValueError(
            f"label_column: {label_column!r} names a column, but the run was trained on a file "
            "without a header; give the label column's index"
        )
    label = _label_index(label_column, None, width, path)
    return [i for i in range(width) if i != label], label


def _named_layout(path, header, header_line, label_column, features):
    """Feature columns (in the training order) and the label column (or ``None``)."""
    if all(map(_is_number, header)) and not set(header) & set(features):
        raise ValueError(
            f"{path}: line {header_line}: expected a header row naming the columns (the run was "
            f"trained on {', '.join(features)}), got a row of numbers"
        )
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise ValueError(f"{path}: the header names columns twice: {', '.join(repeated)}")
    position = {name: i for i, name in enumerate(header)}
    known = set(features)
    extra = [i for i, name in enumerate(header) if name not in known]
    if isinstance(label_column, str):
        label = position.get(label_column)
    else:
        width = len(features) + 1
        at = label_column % width if -width <= label_column < width else None
        label = extra[0] if extra == [at] and len(header) == width else None
    missing = [name for name in features if name not in position]
    unexpected = [header[i] for i in extra if i != label]
    problems = [f"missing feature columns: {', '.join(missing)}"] if missing else []
    problems += [f"unexpected columns: {', '.join(unexpected)}"] if unexpected else []
    if problems:
        raise ValueError(
            f"{path}: {'; '.join(problems)} (the run was trained on {', '.join(features)}, "
            f"label column {label_column!r})"
        )
    return [position[name] for name in features], label


def _read_csv_columns(text, path, skip, width, columns, label):
    """The float32 feature columns and the raw labels of a CSV text, rows below ``skip``."""

    def read(used, dtype):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Input line", UserWarning)
            return np.loadtxt(
                io.StringIO(text), delimiter=",", skiprows=skip, usecols=used, dtype=dtype,
                comments=None, quotechar='"', ndmin=2 if dtype is np.float32 else 1,
            )  # fmt: skip

    try:
        try:
            table = read(None, np.float32)
            if table.shape[1] != width:
                _find_csv_error(text, skip, width, -1 if label is None else label, path)
            x = table[:, columns]
            numeric_labels = None if label is None else table[:, label]
        except ValueError as error:
            if str(error).startswith(str(path)):
                raise
            _find_csv_error(text, skip, width, -1 if label is None else label, path)
            x, numeric_labels = read(columns, np.float32), None
        raw = None if label is None else np.char.strip(read([label], str))
    except ValueError as error:
        if str(error).startswith(str(path)):
            raise
        raise ValueError(f"{path}: cannot read as CSV ({error})") from error
    x = _features(x, str(path))
    if raw is None:
        return x, None
    empty = np.flatnonzero(np.char.str_len(raw) == 0)
    if empty.size:
        raise ValueError(f"{path}: data row {empty[0] + 1} has an empty label (column {label + 1})")
    try:
        return x, raw.astype(np.int64)
    except (ValueError, OverflowError):
        return x, raw if numeric_labels is None else numeric_labels
