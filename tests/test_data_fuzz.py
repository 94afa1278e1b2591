"""Fuzzing the loaders: any file gives a well-formed dataset or a documented error.

The CSV, IDX and ``.npz`` loaders (``load_csv``, ``load_idx``, ``load_npz``, ``load``, and
``load_rows`` with a fitted ``TableSchema``) are given files built from valid ones and then
damaged: random and mutated fields, quotes, delimiters, missing-value marks, ragged rows,
byte-order marks, gzip of random bytes, truncated or rewritten IDX headers and ``.npz``
archives. Every call must either return a well-formed result (``x`` float32, 2-D, finite;
one label per row; class indices within the classes) or raise one of the documented error
types (``ValueError``, ``TypeError``, ``DataFileNotFoundError``). Anything else (an
``IndexError``, a ``KeyError``, an unwrapped library error) fails the test.

The profile is bounded and deterministic (``derandomize=True``), so CI runs the same few
hundred files every time, in seconds. The inputs that once escaped the documented errors
(unsupported zip members, numbers beyond float32, zero-width arrays, damaged saved schemas)
are pinned as cases at the end.
"""

from __future__ import annotations

import gzip
import io
import struct
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fungrad import data
from fungrad.data import DataFileNotFoundError

DOCUMENTED = (ValueError, TypeError, DataFileNotFoundError)
FLOAT32_MAX = float(np.finfo(np.float32).max)

FUZZ = settings(
    max_examples=120,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# --------------------------------------------------------------------------- the oracle


def attempt(call):
    """``call()``'s result, or ``None`` after a documented error; any other error propagates.

    The warning for a one-hot level unseen in training is documented behaviour, not a fault;
    so is NumPy's overflow warning when float64 values beyond float32 are cast, which the
    loaders' finiteness check then reports as an error.
    """
    with warnings.catch_warnings(), np.errstate(over="ignore"):
        warnings.filterwarnings("ignore", "[^\n]*values not seen in training", UserWarning)
        try:
            return call()
        except DOCUMENTED:
            return None


def check_dataset(dataset) -> None:
    """A loader's result is a well-formed :class:`~fungrad.data.Dataset`."""
    assert isinstance(dataset, data.Dataset)
    x, y = dataset.x, dataset.y
    assert x.dtype == np.float32 and x.ndim == 2 and x.shape[0] >= 1
    assert np.isfinite(x).all()
    assert y.ndim in (1, 2) and y.shape[0] == x.shape[0]
    if dataset.n_classes is None:
        assert y.dtype == np.float32 and np.isfinite(y).all()
    else:
        assert y.dtype == np.int64 and len(dataset.classes) == dataset.n_classes
        assert y.min() >= 0 and y.max() < dataset.n_classes
    if dataset.features is not None:
        assert len(dataset.features) == x.shape[1]


def check_rows(result, n_features: int) -> None:
    """``load_rows``' result is float32 rows of the model's width and one label per row."""
    x, y = result
    assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == n_features
    assert np.isfinite(x).all()
    assert y is None or (y.ndim >= 1 and y.shape[0] == x.shape[0])


def chance(draw, percent: int) -> bool:
    """True ``percent`` times in a hundred (``st.floats`` and ``st.integers`` favour their
    bounds, which would make every rare damage common)."""
    return draw(st.sampled_from(range(100))) < percent


def count(draw, low: int, high: int) -> int:
    """A count in ``[low, high]``, drawn about evenly."""
    return draw(st.sampled_from(range(low, high + 1)))


def write(folder, name: str, raw: bytes):
    path = folder / name
    path.write_bytes(raw)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


# --------------------------------------------------------------------------- CSV tables

MARKS = ["NA", "", "NaN", "null", "?", "N/A", "#N/A", "<NA>", "None", "-nan", " na "]
ODD_CELLS = [
    *MARKS, "inf", "-Infinity", "1e400", "4000000000", "99999999999999999999", "2.0", "-0",
    '"a,b"', '"say ""hi"""', '"two\nlines"', '"', "'", "yes", "FALSE", "é", "日本", "\x00",
    "0x10", "1_000", "+5", ".5", "5.", "1e-320", "a b", ";", "\t", "\ufeff", "\u00a0",
]  # fmt: skip
KINDS = ("real", "integer", "price", "text", "yes_no", "holes", "odd")
FIRST_COLUMNS = ("index", "row_names")


def column_cells(draw, kind: str, n: int) -> list[str]:
    """``n`` cells of a column of ``kind`` (reals stay inside float32's range)."""
    if kind in ("real", "holes"):
        values = draw(st.lists(st.floats(-1e6, 1e6), min_size=n, max_size=n))
        marks = st.sampled_from(MARKS)
        return [draw(marks) if kind == "holes" and chance(draw, 20) else f"{v:.4g}" for v in values]
    if kind == "integer":
        return [str(v) for v in draw(st.lists(st.integers(-2, 3), min_size=n, max_size=n))]
    if kind == "price":
        return [str(v) for v in draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n))]
    if kind == "text":
        levels = st.sampled_from(["red", "green", "blue", "Dream", "Biscoe"])
        return draw(st.lists(levels, min_size=n, max_size=n))
    if kind == "yes_no":
        words = st.sampled_from(["yes", "no", "TRUE", "false", "Yes"])
        return draw(st.lists(words, min_size=n, max_size=n))
    if kind == "index":
        start = draw(st.sampled_from([0, 1]))
        return [str(start + i) for i in range(n)]
    if kind == "row_names":
        return [f'"car {i}"' for i in range(n)]
    return draw(st.lists(st.sampled_from(ODD_CELLS), min_size=n, max_size=n))


@st.composite
def table_rows(draw, *, shape_damage: bool) -> list[list[str]]:
    """A table (a header, then rows of fields) with a few cells damaged; with
    ``shape_damage``, rows too (fields added or removed, blank, odd or repeated rows)."""
    n = count(draw, 0, 25)
    width = 1 if chance(draw, 5) else count(draw, 2, 5)
    kinds = [draw(st.sampled_from(KINDS)) for _ in range(width)]
    if chance(draw, 30):
        kinds.insert(0, draw(st.sampled_from(FIRST_COLUMNS)))
    columns = [column_cells(draw, kind, n) for kind in kinds]
    rows = [list(row) for row in zip(*columns, strict=True)]
    if chance(draw, 80):
        index_names = st.sampled_from(['""', "", "rownames", "Unnamed: 0", "id"])
        names = [draw(index_names) if k in FIRST_COLUMNS else f"c{j}" for j, k in enumerate(kinds)]
        rows.insert(0, names)
    damages = ["cell", "text"] + (
        ["extra", "short", "blank", "odd", "repeat"] if shape_damage else []
    )
    for _ in range(draw(st.sampled_from([0, 0, 1, 2, 4]))):
        rows = mutate_rows(draw, rows, damages)
    return rows


def mutate_rows(draw, rows: list[list[str]], damages: list[str]) -> list[list[str]]:
    """One of ``damages``: a cell replaced by an odd one or by any text, a field added or
    removed, a blank, odd or repeated row."""
    if not rows:
        return [draw(st.lists(st.sampled_from(ODD_CELLS), max_size=4))]
    i = draw(st.sampled_from(range(len(rows))))
    row = list(rows[i])
    damage = draw(st.sampled_from(damages))
    if damage == "cell" and row:
        row[draw(st.sampled_from(range(len(row))))] = draw(st.sampled_from(ODD_CELLS))
    elif damage == "text" and row:
        row[draw(st.sampled_from(range(len(row))))] = draw(st.text(max_size=6))
    elif damage == "extra":
        row.append(draw(st.sampled_from(["", "1", "x"])))  # "" is a trailing delimiter
    elif damage == "short" and row:
        row.pop()
    elif damage == "blank":
        return [*rows[:i], [], *rows[i:]]
    elif damage == "odd":
        row = draw(st.lists(st.sampled_from(ODD_CELLS), max_size=6))
    elif damage == "repeat":
        return [*rows[: i + 1], list(row), *rows[i + 1 :]]
    return [*rows[:i], row, *rows[i + 1 :]]


ALL_DAMAGES = ["cell", "text", "extra", "short", "blank", "odd", "repeat"]


@st.composite
def csv_bytes(draw) -> bytes:
    """A table as a file: comma, semicolon or tab delimited, ``\\n`` or ``\\r\\n`` line
    endings, maybe with a BOM and gzipped. A third of the files are damaged in their shape
    too: rows, a ``|`` delimiter, ``\\r`` line endings, truncated, or a byte changed."""
    shape_damage = chance(draw, 35)
    rows = draw(table_rows(shape_damage=shape_damage))
    delimiter = draw(st.sampled_from([",", ",", ",", ";", "\t", *(["|"] if shape_damage else [])]))
    end = draw(st.sampled_from(["\n", "\n", "\r\n", *(["\r"] if shape_damage else [])]))
    text = end.join(delimiter.join(row) for row in rows) + draw(st.sampled_from(["", end]))
    raw = text.encode("utf-8")
    if chance(draw, 10):
        raw = b"\xef\xbb\xbf" + raw
    if chance(draw, 10):
        raw = gzip.compress(raw)
    if raw and shape_damage and chance(draw, 20):
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    if raw and shape_damage and chance(draw, 20):
        position = draw(st.integers(0, len(raw) - 1))
        raw = raw[:position] + bytes([draw(st.integers(0, 255))]) + raw[position + 1 :]
    return raw


COLUMN_CHOICES = st.one_of(
    st.sampled_from(["c0", "c1,c0", "0", "0,2", "", "nope", "-1", "rownames"]),
    st.lists(st.one_of(st.integers(-3, 6), st.sampled_from(["c0", "c2", ""])), max_size=3),
)
OPTION_VALUES = {
    "label_column": st.one_of(
        st.integers(-6, 6), st.sampled_from(["c0", "c1", "c2", "", "-1", "2", "nope"])
    ),
    "header": st.booleans(),
    "delimiter": st.sampled_from([",", ";", "\t", "|"]),
    "task": st.sampled_from(["auto", "classification", "regression"]),
    "columns": COLUMN_CHOICES,
    "drop_columns": COLUMN_CHOICES,
    "missing": st.sampled_from(["error", "drop", "drop"]),
    "max_bytes": st.sampled_from([1, 100, 2**20]),
}


@st.composite
def table_options(draw) -> dict:
    """No option (the defaults), ``missing``, or one to three of ``load_csv``'s options."""
    roll = count(draw, 0, 9)
    if roll < 4:
        return {}
    if roll < 6:
        return {"missing": "drop"}
    names = draw(
        st.lists(st.sampled_from(sorted(OPTION_VALUES)), min_size=1, max_size=3, unique=True)
    )
    return {name: draw(OPTION_VALUES[name]) for name in names}


@FUZZ
@given(
    raw=csv_bytes(), options=table_options(), name=st.sampled_from(["t.csv", "t.tsv", "t.csv.gz"])
)
@pytest.mark.slow
def test_csv_tables_load_or_raise_a_documented_error(folder, raw, options, name):
    path = write(folder, name, raw)
    dataset = attempt(lambda: data.load_csv(path, **options))
    if dataset is not None:
        check_dataset(dataset)
        assert len(dataset.table.input_names()) == dataset.x.shape[1]
    loaded = attempt(lambda: data.load(str(path), **options))
    if loaded is not None:
        check_dataset(loaded)


@FUZZ
@given(
    raw=st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=300).map(gzip.compress),
        st.binary(max_size=300).map(lambda b: gzip.compress(b)[: len(b) // 2 + 12]),
        st.binary(max_size=300).map(lambda b: b"\xef\xbb\xbf" + b),
        st.text(max_size=200).map(lambda t: t.encode("utf-8")),
        st.text(alphabet=',;\t"\n\r 0123456789.-eNA?', max_size=200).map(str.encode),
    ),
    name=st.sampled_from(["r.csv", "r.csv.gz", "r.tsv", "r.npz", "r.idx"]),
)
def test_random_bytes_load_or_raise_a_documented_error(folder, raw, name):
    path = write(folder, name, raw)
    if name.endswith((".csv", ".csv.gz", ".tsv")):
        dataset = attempt(lambda: data.load_csv(path))
        if dataset is not None:
            check_dataset(dataset)
    loaded = attempt(lambda: data.load(str(path)))
    if loaded is not None:
        check_dataset(loaded)
    rows = attempt(lambda: data.load_rows(str(path), n_features=2))
    if rows is not None:
        check_rows(rows, 2)


# --------------------------------------------------------------------------- IDX files

IDX_CODES = {
    np.dtype("u1"): 0x08,
    np.dtype("i1"): 0x09,
    np.dtype("i2"): 0x0B,
    np.dtype("i4"): 0x0C,
    np.dtype("f4"): 0x0D,
    np.dtype("f8"): 0x0E,
}


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` as an IDX file: ``00 00 <dtype> <ndim>``, big-endian sizes, big-endian data."""
    head = bytes([0, 0, IDX_CODES[array.dtype], array.ndim])
    sizes = struct.pack(f">{array.ndim}I", *array.shape)
    return head + sizes + array.astype(array.dtype.newbyteorder(">")).tobytes()


@st.composite
def damaged(draw, raw: bytes, header: int = 24) -> bytes:
    """``raw`` with up to three damages (a byte changed in its first ``header`` bytes or
    anywhere; cut short; extended; a byte removed), then maybe gzipped (whole or cut short)."""
    for _ in range(draw(st.sampled_from([0, 1, 1, 2, 3]))):
        damage = draw(st.sampled_from(["header", "byte", "cut", "extend", "remove"]))
        if damage in ("header", "byte") and raw:
            end = min(len(raw), header) if damage == "header" else len(raw)
            i = draw(st.integers(0, end - 1))
            value = draw(st.one_of(st.sampled_from([0, 1, 3, 0x7F, 0xFF]), st.integers(0, 255)))
            raw = raw[:i] + bytes([value]) + raw[i + 1 :]
        elif damage == "cut":
            raw = raw[: draw(st.integers(0, len(raw)))]
        elif damage == "extend":
            raw += draw(st.binary(min_size=1, max_size=9))
        elif damage == "remove" and raw:
            i = draw(st.integers(0, len(raw) - 1))
            raw = raw[:i] + raw[i + 1 :]
    zipped = draw(st.sampled_from(["no", "no", "no", "whole", "cut"]))
    if zipped == "whole":
        raw = gzip.compress(raw)
    elif zipped == "cut":
        raw = gzip.compress(raw)[: draw(st.integers(0, len(raw) + 20))]
    return raw


@st.composite
def idx_pair(draw) -> tuple[bytes, bytes, int]:
    """IDX images and labels files (damaged or not), and the images' row width."""
    n = count(draw, 0, 6)
    shape = (n, *[count(draw, 0, 4) for _ in range(count(draw, 0, 3))])
    dtype = draw(st.sampled_from(list(IDX_CODES)))
    images = (np.arange(int(np.prod(shape))) % 200).astype(dtype).reshape(shape)
    if dtype.kind == "f" and images.size and draw(st.booleans()):
        with np.errstate(over="ignore"):
            images.flat[0] = draw(st.sampled_from([np.nan, np.inf, 1e300, -1e39]))
    label_shape = draw(st.sampled_from([(n,), (n,), (n + 1,), (n, 2)]))
    label_dtype = draw(st.sampled_from(list(IDX_CODES)))
    labels = (np.arange(int(np.prod(label_shape))) % 3).astype(label_dtype).reshape(label_shape)
    if label_dtype == np.dtype("i4") and labels.size and draw(st.booleans()):
        labels.flat[0] = 2**31 - 1  # a huge label is a class like any other
    images_raw = draw(damaged(idx_bytes(images)))
    labels_raw = draw(damaged(idx_bytes(labels)))
    return images_raw, labels_raw, max(1, int(np.prod(shape[1:])))


@FUZZ
@given(pair=idx_pair(), max_bytes=st.sampled_from([data.MAX_BYTES, data.MAX_BYTES, 64, 1]))
@pytest.mark.slow
def test_idx_files_load_or_raise_a_documented_error(folder, pair, max_bytes):
    images_raw, labels_raw, width = pair
    images = write(folder, "images.idx", images_raw)
    labels = write(folder, "labels.idx", labels_raw)
    for call in (
        lambda: data.load_idx(images, labels, max_bytes=max_bytes),
        lambda: data.load(str(images), labels=labels, max_bytes=max_bytes),
        lambda: data.load(str(images)),
    ):
        dataset = attempt(call)
        if dataset is not None:
            check_dataset(dataset)
    for labels_file in (labels, None):
        rows = attempt(
            lambda labels_file=labels_file: data.load_rows(
                str(images), labels=labels_file, n_features=width
            )
        )
        if rows is not None:
            check_rows(rows, width)


# --------------------------------------------------------------------------- .npz archives

NPZ_X = st.sampled_from(["float32", "float64", "int64", "uint8", "bool", "float16", "complex64"])
NPZ_Y = st.sampled_from(
    ["classes", "reals", "names", "two_targets", "three_d", "scalar", "one_more", "objects"]
)


def npz_labels(kind: str, n: int) -> np.ndarray:
    return {
        "classes": np.arange(n) % 3,
        "reals": np.linspace(-1, 1, n),
        "names": np.array(["setosa", "virginica"] * n)[:n],
        "two_targets": np.ones((n, 2)),
        "three_d": np.ones((n, 2, 2)),
        "scalar": np.array(5),
        "one_more": np.arange(n + 1) % 2,
        "objects": np.array([None] * n, dtype=object),
    }[kind]


@st.composite
def npz_archive(draw) -> tuple[bytes, int]:
    """An ``.npz`` archive built from valid arrays, then maybe damaged; and the row width."""
    n = count(draw, 0, 5)
    shape = (n, *[count(draw, 0, 3) for _ in range(count(draw, 0, 2))])
    x = (np.arange(int(np.prod(shape))) % 7).astype(draw(NPZ_X)).reshape(shape)
    if x.dtype.kind == "f" and x.size and draw(st.booleans()):
        with np.errstate(over="ignore"):
            x.flat[0] = draw(st.sampled_from([np.nan, np.inf, 1e39]))
    arrays = {"x": x, "y": npz_labels(draw(NPZ_Y), n)}
    for name in draw(st.lists(st.sampled_from(["x", "y"]), max_size=1)):
        del arrays[name]
    if draw(st.booleans()):
        arrays["notes"] = np.arange(3)
    buffer = io.BytesIO()
    save = np.savez_compressed if draw(st.booleans()) else np.savez
    save(buffer, **arrays)
    raw = buffer.getvalue()
    if draw(st.booleans()):  # a header that declares more rows than follow
        raw = raw.replace(b"'shape': (", b"'shape': (99999999, ", 1)
    raw = draw(damaged(raw, header=len(raw)))
    return raw, max(1, int(np.prod(shape[1:])))


@FUZZ
@given(archive=npz_archive(), max_bytes=st.sampled_from([data.MAX_BYTES, data.MAX_BYTES, 100]))
def test_npz_archives_load_or_raise_a_documented_error(folder, archive, max_bytes):
    raw, width = archive
    path = write(folder, "arrays.npz", raw)
    for call in (
        lambda: data.load_npz(path, max_bytes=max_bytes),
        lambda: data.load(str(path), max_bytes=max_bytes),
    ):
        dataset = attempt(call)
        if dataset is not None:
            check_dataset(dataset)
    rows = attempt(lambda: data.load_rows(str(path), n_features=width, max_bytes=max_bytes))
    if rows is not None:
        check_rows(rows, width)


# --------------------------------------------------------------------------- new rows, read with a schema

TRAINING_NAMES = ["", "size", "flag", "colour", "grade"]


def training_file(folder, header: bool):
    """A training table (index, number, yes/no, text, integer class) and its fitted schema."""
    rows = [
        [str(i + 1), f"{(i * 7 % 11) / 3:.3f}", ["yes", "no"][i % 2],
         ["red", "blue", "green"][i % 3], str(i % 3 + 1)]
        for i in range(30)
    ]  # fmt: skip
    if header:
        rows.insert(0, TRAINING_NAMES)
    else:
        rows = [row[1:] for row in rows]
    path = write(folder, f"train{int(header)}.csv", "\n".join(map(",".join, rows)).encode())
    return data.load_csv(path, header=header).table


@st.composite
def new_rows(draw, header: bool) -> bytes:
    """A file to predict on: the training columns, reordered, some left out or repeated, then
    damaged like the training fuzzer's tables."""
    columns = list(range(5) if header else range(4))
    if draw(st.booleans()):
        columns = draw(st.permutations(columns))
    if chance(draw, 30):
        columns = [draw(st.sampled_from(columns)) for _ in range(count(draw, 1, 6))]
    levels = ["red", "blue", "green", "green", "purple"]  # purple: unseen in training
    labels = st.sampled_from(["1", "2", "3", "", "NA"]) if draw(st.booleans()) else st.just("")
    rows = []
    for i in range(count(draw, 0, 6)):
        full = [str(i + 1), f"{draw(st.floats(-1e3, 1e3)):.3f}", draw(st.sampled_from(["yes", "no"])),
                draw(st.sampled_from(levels)), draw(labels)]  # fmt: skip
        full = full if header else full[1:]
        rows.append([full[j] for j in columns])
    if header:
        extra = draw(st.sampled_from([[]] * 8 + [["extra"], ["size"]]))
        rows.insert(0, [TRAINING_NAMES[j] for j in columns] + extra)
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2, 3]))):
        rows = mutate_rows(draw, rows, ALL_DAMAGES)
    raw = "\n".join(map(",".join, rows)).encode()
    return gzip.compress(raw) if chance(draw, 10) else raw


@FUZZ
@given(data_=st.data(), header=st.booleans(), missing=st.sampled_from(["error", "drop"]))
@pytest.mark.slow
def test_new_rows_read_with_a_schema_or_raise_a_documented_error(folder, data_, header, missing):
    schema = training_file(folder, header)
    width = len(schema.input_names())
    path = write(folder, "new.csv", data_.draw(new_rows(header)))
    table = data_.draw(st.sampled_from([schema, schema.to_dict()]))
    rows = attempt(
        lambda: data.load_rows(str(path), table=table, n_features=width, missing=missing)
    )
    if rows is not None:
        check_rows(rows, width)
        _, y = rows
        if y is not None:
            assert set(y.tolist()) <= {1, 2, 3}


# --------------------------------------------------------------------------- known bad inputs, case by case


def schema_case(key: str, value, what: str | None = None):
    """A damaged entry of a saved schema (``what``: how it once escaped as an IndexError)."""
    return pytest.param(key, value, id=f"{key}={value!r}")


BAD_SCHEMAS = [
    schema_case("width", "x"),
    schema_case("delimiter", ""),
    schema_case("delimiter", None),
    schema_case("features", "abc"),
    schema_case("features", [{"name": "size"}]),
    schema_case("kind", "weird"),
    schema_case("kind", 3),
    schema_case("task", "x"),
    schema_case("header", True),
    schema_case("label", 7, "a label position outside the table is not checked"),
    schema_case("label", 1.5, "a label position that is not an integer is not checked"),
    schema_case("name", 9, "a feature position outside the table is not checked"),
    schema_case("name", "a", "a feature named by text in a table without a header"),
]


@pytest.mark.parametrize("key, value", BAD_SCHEMAS)
def test_a_damaged_saved_schema_is_a_documented_error(tmp_path, key, value):
    saved = training_file(tmp_path, header=False).to_dict()
    if key in ("kind", "name"):
        saved["features"][0][key] = value
    else:
        saved[key] = value
    path = write(tmp_path, "new.csv", b"0.5,yes,red,1\n0.7,no,blue,2\n")
    rows = attempt(lambda: data.load_rows(str(path), table=saved, n_features=5))
    if rows is not None:
        check_rows(rows, 5)


def patched_npz(offset: int, value: int) -> bytes:
    """A valid archive with one 2-byte field of its first central directory entry rewritten."""
    buffer = io.BytesIO()
    np.savez(buffer, x=np.ones((4, 2), np.float32), y=np.array([0, 1, 0, 1]))
    raw = bytearray(buffer.getvalue())
    entry = raw.find(b"PK\x01\x02")
    raw[entry + offset : entry + offset + 2] = value.to_bytes(2, "little")
    return bytes(raw)


@pytest.mark.parametrize(
    "offset, value",
    [(6, 255), (10, 99), (8, 0x01), (8, 0x20), (8, 0x40)],
    ids=["zip-version-25.5", "compression-method-99", "encrypted", "patched-data", "strong-encryption"],
)  # fmt: skip
def test_a_zip_feature_numpy_cannot_read_is_a_documented_error(tmp_path, offset, value):
    path = write(tmp_path, "arrays.npz", patched_npz(offset, value))
    dataset = attempt(lambda: data.load_npz(path))
    assert dataset is None


@pytest.mark.parametrize(
    "text",
    ["a,y\n1,0.5\n1e50,1.5\n3,2.5\n", "a,b,y\n1,x,0.5\n-1e39,y,1.5\n3,x,2.5\n",
     "a,y\n1,0.5\n2,1e39\n3,2.5\n"],
    ids=["feature", "feature-with-text-column", "regression-target"],
)  # fmt: skip
def test_a_number_beyond_float32_is_an_error_naming_its_line(tmp_path, text):
    path = write(tmp_path, "big.csv", text.encode())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's "overflow encountered in cast"
        dataset = attempt(lambda: data.load_csv(path))
    assert dataset is None or (np.isfinite(dataset.x).all() and np.isfinite(dataset.y).all())


def test_numbers_up_to_float32s_largest_load_as_they_are(tmp_path):
    largest = f"{FLOAT32_MAX:.6e}"
    path = write(tmp_path, "edge.csv", f"a,y\n1,0.5\n{largest},1.5\n3,2.5\n".encode())
    dataset = data.load_csv(path)
    check_dataset(dataset)
    assert dataset.x[1, 0] == np.float32(float(largest))


@pytest.mark.parametrize("source", ["idx", "npz"])
def test_rows_without_features_are_an_error(tmp_path, source):
    if source == "idx":
        images = write(tmp_path, "images.idx", idx_bytes(np.zeros((3, 0), np.uint8)))
        labels = write(tmp_path, "labels.idx", idx_bytes(np.array([0, 1, 0], np.uint8)))
        dataset = attempt(lambda: data.load_idx(images, labels))
    else:
        buffer = io.BytesIO()
        np.savez(buffer, x=np.zeros((3, 0, 2)), y=np.array([0, 1, 0]))
        dataset = attempt(lambda: data.load_npz(write(tmp_path, "a.npz", buffer.getvalue())))
    assert dataset is None or dataset.x.shape[1] >= 1
