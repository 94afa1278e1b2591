"""The CSV table rules: columns, missing values, labels, encodings, file shape, and the
fitted schema that prediction applies to new files."""

import gzip
import warnings

import numpy as np
import pytest

from fungrad import data
from fungrad.data import TableSchema


def write(path, text, *, gzipped=False, encoding="utf-8"):
    raw = text.encode(encoding)
    path.write_bytes(gzip.compress(raw) if gzipped else raw)
    return path


def regular(n=40, seed=0):
    """A table of ``n`` rows: a number, a yes/no column, a text column, an integer class."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        kind = ["a", "b"][i % 2]
        rows.append(
            f"{rng.normal():.3f},{['yes', 'no'][i % 3 == 0]},{['red', 'blue', 'green'][i % 3]},{kind}"
        )
    return "x,flag,colour,kind\n" + "\n".join(rows) + "\n"


# --------------------------------------------------------------------------- index columns


@pytest.mark.parametrize(
    "name, first",
    [('""', 0), ("Unnamed: 0", 0), ("rownames", 1), ('""', 1)],
)
def test_index_columns_are_dropped_with_a_note(tmp_path, name, first):
    rows = "".join(f"{first + i},{i * 0.5},{i % 2}\n" for i in range(12))
    path = write(tmp_path / "d.csv", f"{name},x,y\n{rows}")
    loaded = data.load_csv(path)
    assert loaded.x.shape == (12, 1) and loaded.features == ["x"]
    assert any("dropped as an index" in note for note in loaded.notes)
    assert loaded.table.dropped == (name.strip('"'),)


def test_r_row_names_are_dropped_as_an_index(tmp_path):
    text = '"","mpg","am"\n"Mazda RX4",21,1\n"Datsun 710",22.8,1\n"Valiant",18.1,0\n'
    loaded = data.load_csv(write(tmp_path / "mtcars.csv", text), task="classification")
    assert loaded.features == ["mpg"] and loaded.classes == [0, 1]
    assert "row names" in loaded.notes[0]


def test_a_first_column_that_is_not_a_range_is_a_feature(tmp_path):
    path = write(tmp_path / "d.csv", '"",x,y\n5,1,0\n3,2,1\n9,3,0\n')
    loaded = data.load_csv(path)
    assert loaded.x.shape == (3, 2) and loaded.features == ["", "x"]


def test_columns_and_drop_columns_by_name_or_index(tmp_path):
    path = write(tmp_path / "d.csv", regular())
    kept = data.load_csv(path, columns=["x"])
    assert kept.features == ["x"] and set(kept.table.dropped) == {"flag", "colour"}
    dropped = data.load_csv(path, drop_columns="colour,1")
    assert dropped.features == ["x"]
    with pytest.raises(ValueError, match=r"drop_columns: no column named 'size'"):
        data.load_csv(path, drop_columns=["size"])
    with pytest.raises(ValueError, match=r"columns: column 'kind' is the label column"):
        data.load_csv(path, columns=["x", "kind"])
    with pytest.raises(ValueError, match=r"columns: column 'x' is given twice"):
        data.load_csv(path, columns=["x", 0])


# --------------------------------------------------------------------------- missing values


def test_missing_values_are_an_error_naming_count_columns_and_lines(tmp_path):
    text = "a,b,y\n1,NA,0\n2,3,1\n?,4,0\n5,,1\n6,7,null\n"
    path = write(tmp_path / "d.csv", text)
    with pytest.raises(ValueError) as info:
        data.load_csv(path)
    message = str(info.value)
    assert "4 missing values" in message and "in 4 rows" in message
    assert "'a' (1), 'b' (2), 'y' (1)" in message
    assert "first at lines 2, 4, 5" in message and "--missing drop" in message


def test_missing_drop_drops_those_rows_and_says_how_many(tmp_path):
    text = "a,b,y\n1,NA,0\n2,3,1\n?,4,0\n5,,1\n6,7,N/A\n8,9,0\n"
    loaded = data.load_csv(write(tmp_path / "d.csv", text), missing="drop")
    assert loaded.x.tolist() == [[2, 3], [8, 9]]
    assert any("dropped 4 of 6 rows with missing values" in note for note in loaded.notes)


def test_a_dropped_column_may_hold_missing_values(tmp_path):
    text = "a,notes,y\n1,NA,0\n2,,1\n"
    loaded = data.load_csv(write(tmp_path / "d.csv", text), drop_columns=["notes"])
    assert loaded.x.tolist() == [[1], [2]]


def test_a_first_row_with_na_is_data_not_a_header(tmp_path):
    path = write(tmp_path / "d.csv", "1,NA,0\n2,3,1\n4,5,0\n")
    with pytest.raises(ValueError, match=r"missing values .* first at lines 1;"):
        data.load_csv(path)
    loaded = data.load_csv(path, missing="drop")
    assert loaded.x.tolist() == [[2, 3], [4, 5]] and loaded.table.header is False


# --------------------------------------------------------------------------- labels


def test_numeric_labels_stay_numbers_ordered_by_value(tmp_path):
    rows = "".join(f"{i},{[2, 10, 1][i % 3]}\n" for i in range(30))
    loaded = data.load_csv(write(tmp_path / "d.csv", "x,label\n" + rows))
    assert loaded.classes == [1, 2, 10]
    assert np.asarray(loaded.classes)[loaded.y].tolist() == [[2, 10, 1][i % 3] for i in range(30)]


def test_2_and_2_point_0_are_one_class(tmp_path):
    rows = "".join(f"{i},{['1', '2', '2.0'][i % 3]}\n" for i in range(30))
    loaded = data.load_csv(write(tmp_path / "d.csv", "x,label\n" + rows))
    assert loaded.classes == [1, 2] and loaded.n_classes == 2


def test_a_numeric_label_with_na_is_an_error_not_text_classes(tmp_path):
    rows = "".join(f"{i},{i % 3}\n" for i in range(30)) + "30,NA\n"
    with pytest.raises(ValueError, match=r"missing values .*'label' \(1\)"):
        data.load_csv(write(tmp_path / "d.csv", "x,label\n" + rows))


def test_one_huge_label_does_not_size_an_array(tmp_path):
    rows = "".join(f"{i},{[0, 4000000000][i % 2]}\n" for i in range(30))
    loaded = data.load_csv(write(tmp_path / "d.csv", "x,label\n" + rows))
    assert loaded.classes == [0, 4000000000] and loaded.n_classes == 2


def test_integer_targets_with_many_values_are_regression_with_a_note(tmp_path):
    rows = "".join(f"{i},{300 + 7 * i}\n" for i in range(32))
    loaded = data.load_csv(write(tmp_path / "prices.csv", "x,price\n" + rows))
    assert loaded.n_classes is None and loaded.y.dtype == np.float32
    assert any("32 distinct integers in 32 rows, so regression" in n for n in loaded.notes)
    forced = data.load_csv(tmp_path / "prices.csv", task="regression")
    assert forced.notes == () and forced.n_classes is None


def test_few_integer_values_are_classes_with_a_note(tmp_path):
    rows = "".join(f"{i},{[4, 6, 8][i % 3]}\n" for i in range(32))
    loaded = data.load_csv(write(tmp_path / "cyl.csv", "x,cyl\n" + rows))
    assert loaded.classes == [4, 6, 8]
    assert any("3 distinct integers in 32 rows, so classification" in n for n in loaded.notes)
    assert data.load_csv(tmp_path / "cyl.csv", task="regression").n_classes is None


def test_a_class_count_that_cannot_make_sense_is_an_error(tmp_path):
    rows = "".join(f"{i},{1000 + i}\n" for i in range(40))
    path = write(tmp_path / "d.csv", "x,price\n" + rows)
    with pytest.raises(ValueError, match=r"40 classes in 40 rows.*--task regression"):
        data.load_csv(path, task="classification")


def test_text_labels_cannot_be_a_regression(tmp_path):
    path = write(tmp_path / "d.csv", "x,y\n1,cat\n2,dog\n")
    with pytest.raises(ValueError, match=r"line 2, label column 'y': regression needs numbers"):
        data.load_csv(path, task="regression")


# --------------------------------------------------------------------------- features


def test_text_features_one_hot_and_yes_no_as_one_zero(tmp_path):
    loaded = data.load_csv(write(tmp_path / "d.csv", regular(6)))
    assert loaded.features == ["x", "flag", "colour=blue", "colour=green", "colour=red"]
    assert loaded.x[:3, 1:].tolist() == [[0, 0, 0, 1], [1, 1, 0, 0], [1, 0, 1, 0]]
    kinds = [column.kind for column in loaded.table.features]
    assert kinds == ["number", "bool", "onehot"]
    assert any("one-hot encoded as 3 columns (blue, green, red)" in n for n in loaded.notes)


@pytest.mark.parametrize(
    "cells, message",
    [
        (["1.5", "2", "n.a.", "4"], r"line 4, column 'f' mixes numbers with text \('n.a.'\)"),
        ([f"id{i}" for i in range(101)], r"column 'f' holds text with 101 distinct values"),
    ],
)
def test_unusable_text_columns_are_errors(tmp_path, cells, message):
    rows = "".join(f"{cell},{i % 2}\n" for i, cell in enumerate(cells))
    with pytest.raises(ValueError, match=message):
        data.load_csv(write(tmp_path / "d.csv", "f,y\n" + rows))


def test_training_levels_come_from_the_training_part(tmp_path):
    rows = "".join(f"{i},{'rare' if i == 0 else ['u', 'v'][i % 2]},{i % 2}\n" for i in range(40))
    loaded = data.load_csv(write(tmp_path / "d.csv", "x,c,y\n" + rows))
    parts = data.split(loaded.x, loaded.y, seed=0, validation=0.0, test=0.25)
    in_train = bool(parts.x_train[:, 1].any())  # the column of level "rare"
    parts2, trained = data.training_levels(parts, loaded)
    levels = trained.table.features[1].levels
    assert ("rare" in levels) == in_train
    assert parts2.x_train.shape[1] == parts2.x_test.shape[1] == 1 + len(levels)


# --------------------------------------------------------------------------- file shape


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,b,y\n1,2,0\n3,4,1,\n", r"line 3: expected 3 fields like the first row, got 4 "
         r"\(the last one empty: a trailing delimiter\?\)"),
        ("a,b,y\n1,2,0\n3,4,1,7\n", r"line 3: expected 3 fields .* would shift the columns"),
        ("a,b,y\n1,2,0\n3,4\n", r"line 3: expected 3 fields like the first row, got 2"),
    ],
)  # fmt: skip
def test_ragged_rows_name_their_line(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        data.load_csv(write(tmp_path / "d.csv", text))


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_semicolon_and_tab_delimiters_are_detected_with_a_note(tmp_path, delimiter):
    text = regular(12).replace(",", delimiter)
    loaded = data.load_csv(write(tmp_path / "d.csv", text))
    assert loaded.x.shape == (12, 5) and loaded.table.delimiter == delimiter
    assert "(detected)" in loaded.notes[0]


def test_semicolon_file_with_decimal_commas_picks_the_semicolon(tmp_path):
    path = write(tmp_path / "d.csv", "a;b;y\n1,5;2;x\n3,25;4;z\n")
    loaded = data.load_csv(path, columns=["b"])
    assert loaded.table.delimiter == ";" and loaded.x.tolist() == [[2], [4]]


def test_quotes_bom_gzip_and_an_explicit_delimiter(tmp_path):
    text = '\ufeff"name, full","note",y\n"Smith, J","two\nlines",1\n"Doe, A","x",0\n'
    path = write(tmp_path / "q.csv.gz", text.replace("y\n", "y\n"), gzipped=True)
    loaded = data.load_csv(path, drop_columns=["note"], task="classification")
    assert loaded.features == ["name, full=Doe, A", "name, full=Smith, J"]
    path = write(tmp_path / "pipe.csv", "a|b|y\n1|2|0\n3|4|1\n")
    assert data.load_csv(path, delimiter="|").x.tolist() == [[1, 2], [3, 4]]


def test_no_header_reads_the_first_row_as_data(tmp_path):
    path = write(tmp_path / "d.csv", "u,v,a\nw,v,b\n")
    detected = data.load_csv(path)  # a row of words, one never repeated below: a header
    assert detected.table.header is True and detected.x.shape[0] == 1
    loaded = data.load_csv(path, header=False)
    assert loaded.x.shape == (2, 3) and loaded.features is None and loaded.classes == ["a", "b"]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"task": "guess"}, ValueError, r"task: expected one of auto, classification"),
        ({"missing": "fill"}, ValueError, r"missing: expected 'error' or 'drop'"),
        ({"delimiter": ",,"}, ValueError, r"delimiter: expected one character"),
        ({"delimiter": '"'}, ValueError, r"delimiter: '\"' cannot separate fields"),
        ({"columns": 3.5}, TypeError, r"columns: expected a list of column names"),
    ],
)
def test_bad_table_options(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        data.load_csv(write(tmp_path / "d.csv", regular(4)), **kwargs)


def test_table_options_are_for_csv_files_only():
    with pytest.raises(ValueError, match=r"task: only CSV files take this option, not digits"):
        data.load("digits", task="regression")


# --------------------------------------------------------------------------- the schema


def test_the_schema_round_trips_and_reads_new_files_like_training(tmp_path):
    loaded = data.load_csv(write(tmp_path / "d.csv", regular(12)))
    schema = TableSchema.from_dict(loaded.table.to_dict())
    assert schema == loaded.table
    new = write(tmp_path / "new.csv", "colour,kind,flag,x\nblue,a,no,1.5\npurple,b,yes,2\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x, y = data.load_rows(new, table=schema, n_features=5)
    assert x.tolist() == [[1.5, 0, 1, 0, 0], [2, 1, 0, 0, 0]] and y.tolist() == ["a", "b"]
    assert "'purple', line 3" in str(caught[0].message) and "all zeros" in str(caught[0].message)
    without_label = write(tmp_path / "new2.csv", "x,flag,colour\n1,yes,red\n")
    x, y = data.load_rows(without_label, table=schema.to_dict(), n_features=5)
    assert y is None and x.tolist() == [[1, 1, 0, 0, 1]]


def test_prediction_rows_with_missing_or_unreadable_values_are_errors(tmp_path):
    schema = data.load_csv(write(tmp_path / "d.csv", regular(12))).table
    with pytest.raises(ValueError, match=r"1 rows have missing values .* first at lines 2"):
        data.load_rows(write(tmp_path / "n.csv", "x,flag,colour\nNA,yes,red\n"), table=schema,
                       n_features=5)  # fmt: skip
    with pytest.raises(ValueError, match=r"line 2, column 'flag': expected true/false or yes/no"):
        data.load_rows(write(tmp_path / "n.csv", "x,flag,colour\n1,maybe,red\n"), table=schema,
                       n_features=5)  # fmt: skip


def test_numeric_labels_of_new_rows_are_numbers(tmp_path):
    rows = "".join(f"{i},{[4, 6, 8][i % 3]}\n" for i in range(32))
    schema = data.load_csv(write(tmp_path / "cyl.csv", "x,cyl\n" + rows)).table
    _, y = data.load_rows(write(tmp_path / "n.csv", "x,cyl\n1,6.0\n2,8\n"), table=schema,
                          n_features=1)  # fmt: skip
    assert y.tolist() == [6, 8] and y.dtype == np.int64


def test_decimal_commas_in_a_semicolon_file_are_numbers_with_a_note(tmp_path):
    path = write(tmp_path / "wine.csv", "alcohol;acid;quality\n7,4;0,7;5\n7,8;1;5\n11,2;0,28;6\n")
    loaded = data.load_csv(path, task="classification")
    np.testing.assert_allclose(loaded.x, [[7.4, 0.7], [7.8, 1.0], [11.2, 0.28]], rtol=1e-6)
    assert [c.kind for c in loaded.table.features] == ["decimal", "decimal"]
    assert any("decimal comma" in note for note in loaded.notes)
    x, _ = data.load_rows(write(tmp_path / "new.csv", "acid;alcohol\n0,5;9,5\n"),
                          table=loaded.table, n_features=2)  # fmt: skip
    np.testing.assert_allclose(x, [[9.5, 0.5]], rtol=1e-6)


def test_a_ragged_row_in_a_semicolon_file_is_reported_by_line(tmp_path):
    path = write(tmp_path / "r.csv", "a;b;y\n1;2;0\n3;4;1;5\n5;6;0\n7;8;1\n")
    with pytest.raises(ValueError, match=r"line 3: expected 3 fields like the first row, got 4"):
        data.load_csv(path)


def test_a_numeric_label_column_with_a_word_is_an_error(tmp_path):
    path = write(tmp_path / "l.csv", "a,y\n1,2\n2,10\n3,x\n4,2\n")
    with pytest.raises(ValueError, match=r"line 4, label column 'y' mixes numbers with text"):
        data.load_csv(path)


def test_old_mac_line_endings_and_all_numeric_files(tmp_path):
    path = write(tmp_path / "mac.csv", "a,b,y\r1,2,0\r3,4,1\r")
    assert data.load_csv(path, task="classification").x.tolist() == [[1, 2], [3, 4]]
    rows = "".join(f"{i},{i * 2},{i % 2}\n" for i in range(40))
    numeric = data.load_csv(write(tmp_path / "n.csv", "a,b,y\n" + rows))
    assert numeric.x.shape == (40, 2) and numeric.classes == [0, 1]


def test_numbers_beyond_float32_are_errors(tmp_path):
    with pytest.raises(ValueError, match=r"line 3, column 'a': expected a finite number within"):
        data.load_csv(write(tmp_path / "big.csv", "a,y\n1,0\n1e50,1\n"))
