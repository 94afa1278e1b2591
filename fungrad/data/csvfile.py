"""Reading a delimited text file into a table of text cells, with each row's line number.

Only the file's shape is decided here: the delimiter (``,``, ``;`` or tab, detected from the
first rows unless given), whether the first row is a header, and that every row has as
many fields as the first. What the cells mean (numbers, missing values, classes) is decided
by :mod:`fungrad.data.schema`.

The standard library's :mod:`csv` parser reads the rows (quoted fields may hold delimiters,
quotes and newlines; a UTF-8 byte-order mark is dropped; gzip is detected by its first
bytes). A file of numbers only is read by :func:`numpy.loadtxt` instead, which keeps the
memory of a large all-numeric file (MNIST as CSV) near the size of its array.
"""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from fungrad.data.files import _read

DELIMITERS = (",", ";", "\t")
"""The delimiters that are detected, in order of preference when several fit."""

MISSING = frozenset({"", "na", "nan", "-nan", "null", "none", "?", "n/a", "#n/a", "<na>"})
"""Cells read as missing values: these, in upper case, or title case, and ``NaN``."""

_MISSING_CELLS = sorted({form for m in MISSING for form in (m, m.upper(), m.title(), "NaN")})
_SAMPLE_ROWS = 50


class RawTable(NamedTuple):
    """A delimited file's rows as text.

    Attributes:
        path: the file.
        delimiter: the field delimiter.
        header: whether the first row named the columns.
        names: the column names (the header's), or ``None`` without a header.
        cells: the data rows' stripped text ``(n, width)``; ``None`` when every cell is a
            number (then ``numbers`` holds them).
        numbers: the cells as float64 ``(n, width)`` when every cell is a finite number,
            else ``None``.
        lines: the line each data row starts on ``(n,)``, or ``None`` with ``numbers``.
    """

    path: Path
    delimiter: str
    header: bool
    names: list[str] | None
    cells: np.ndarray | None
    numbers: np.ndarray | None
    lines: np.ndarray | None

    @property
    def width(self) -> int:
        """The number of columns."""
        table = self.cells if self.cells is not None else self.numbers
        return table.shape[1]

    @property
    def n_rows(self) -> int:
        """The number of data rows."""
        table = self.cells if self.cells is not None else self.numbers
        return table.shape[0]

    def column(self, j: int) -> np.ndarray:
        """Column ``j`` as read: float64 numbers for an all-numeric file, else text."""
        return self.cells[:, j] if self.cells is not None else self.numbers[:, j]

    def column_text(self, j: int) -> np.ndarray:
        """Column ``j``'s cells as text ``(n,)`` (numbers written back with ``repr``)."""
        if self.cells is not None:
            return self.cells[:, j]
        return np.array([_number_text(v) for v in self.numbers[:, j]], dtype=str)


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(float(value))


def is_number(text: str) -> bool:
    """Whether ``text`` reads as a number (``"3"``, ``"-2.5e3"``, ``"inf"``).

    Example:
        >>> is_number("2.0"), is_number("NA"), is_number("")
        (True, False, False)
    """
    try:
        float(text)
    except ValueError:
        return False
    return True


def is_missing(text: str) -> bool:
    """Whether a cell marks a missing value (``NA``, ``NaN``, empty, ``null``, ``?``, ...).

    Example:
        >>> is_missing(" NA "), is_missing("0")
        (True, False)
    """
    return bool(missing_mask(np.array([text.strip()]))[0])


def missing_mask(cells: np.ndarray) -> np.ndarray:
    """Which of ``cells`` (stripped text, any shape) mark missing values.

    The marks are matched in lower case, upper case and title case (``na``, ``NA``,
    ``Na``), and ``NaN``.

    Example:
        >>> missing_mask(np.array([["1", "NA"], ["?", "N/A"]])).tolist()
        [[False, True], [True, True]]
    """
    return np.isin(cells, _MISSING_CELLS)


def read_table(
    path: Path,
    max_bytes: int,
    *,
    delimiter: str | None = None,
    header: bool | None = None,
) -> tuple[RawTable, list[str]]:
    """Read ``path`` into a :class:`RawTable`, and the notes about what was decided.

    Args:
        path: the file (plain or gzip).
        max_bytes: the most bytes the file may hold once inflated.
        delimiter: the field delimiter, or ``None`` to detect ``,``, ``;`` or tab.
        header: whether the first row names the columns; ``None`` detects it.

    Raises:
        ValueError: for a file that is not UTF-8 text, has no rows, fewer than two columns,
            a row of another width than the first (naming its line), or a header without
            data rows.
    """
    text = _text(path, max_bytes)
    notes = []
    if delimiter is None:
        delimiter = _detect_delimiter(text, path)
        if delimiter != ",":
            notes.append(f"{path.name}: fields separated by {_shown(delimiter)} (detected)")
    rows = _rows(text, delimiter, path)
    first_line, first = next(rows, (None, None))
    if first is None:
        raise ValueError(f"{path}: no rows; expected delimited samples, one per line")
    if len(first) < 2:
        raise ValueError(
            f"{path}: line {first_line}: expected at least two columns (features and a label) "
            f"separated by {_shown(delimiter)}, got one; choose the delimiter with --delimiter"
        )
    sample = [fields for _, (_, fields) in zip(range(_SAMPLE_ROWS), rows, strict=False)]
    if header is None:
        header = _looks_like_header(first, sample)
        if not header:
            notes.append(f"{path.name}: no header row; columns are known by their index")
    skip = first_line if header else first_line - 1
    numbers = _all_numbers(text, delimiter, skip, len(first))
    if numbers is not None:
        if header and numbers.shape[0] == 0:
            raise ValueError(f"{path}: no data rows after the header")
        names = first if header else None
        lines = _line_numbers(text, skip, numbers.shape[0])
        return RawTable(path, delimiter, header, names, None, numbers, lines), notes
    lines, cells = _cells(text, delimiter, path, len(first), skip_first=header)
    if header and cells.shape[0] == 0:
        raise ValueError(f"{path}: no data rows after the header")
    return RawTable(path, delimiter, header, first if header else None, cells, None, lines), notes


def _text(path: Path, max_bytes: int) -> str:
    try:
        text = _read(path, max_bytes).decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: expected UTF-8 text ({error})") from error
    if "\r" in text:  # Windows (\r\n) and old Mac (\r) line endings
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _shown(delimiter: str) -> str:
    return {"\t": "tabs", ",": "commas", ";": "semicolons"}.get(delimiter, repr(delimiter))


def _rows(text: str, delimiter: str, path: Path):
    """Non-blank rows ``(line where the row starts, stripped fields)``."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 1
    try:
        for row in reader:
            fields = [field.strip() for field in row]
            if any(fields):
                yield start, fields
            start = reader.line_num + 1
    except csv.Error as error:
        raise ValueError(f"{path}: line {reader.line_num}: not valid CSV ({error})") from error


def _detect_delimiter(text: str, path: Path) -> str:
    """The delimiter splitting the first rows into the most columns, consistently.

    A candidate fits when it gives at least two fields and all but one in ten of the first
    rows (at least one) have its most common width, so that a ragged row is reported by its
    line; among those, the widest wins, then the first of :data:`DELIMITERS`.
    """
    sample = text[: 1 << 16]
    if len(text) > len(sample):
        sample = sample[: sample.rfind("\n") + 1] or sample
    best, best_width = ",", 0
    for candidate in DELIMITERS:
        try:
            rows = zip(range(_SAMPLE_ROWS), _rows(sample, candidate, path), strict=False)
            widths = [len(fields) for _, (_, fields) in rows]
        except ValueError:
            continue
        if not widths:
            continue
        width = max(set(widths), key=widths.count)
        consistent = widths.count(width) >= len(widths) - max(1, len(widths) // 10)
        if width >= 2 and consistent and width > best_width:
            best, best_width = candidate, width
    return best


def _looks_like_header(first: list[str], sample: list[list[str]]) -> bool:
    """A header names columns: it holds a word above numbers, or words never repeated below.

    The first row is a header if some column holds numbers (or missing values) in the rows
    below but a word (neither a number nor a missing-value mark) in the first row; or, when
    every field of the first row is such a word, if one of them appears nowhere below in its
    column.
    """
    width = len(first)
    words = [not is_number(f) and not is_missing(f) for f in first]
    below = [[row[j] for row in sample if len(row) == width] for j in range(width)]
    for j in range(width):
        cells = below[j]
        numeric = [is_number(c) for c in cells if not is_missing(c)]
        if words[j] and numeric and all(numeric):
            return True
    return all(words) and (not sample or any(first[j] not in below[j] for j in range(width)))


def _line_numbers(text: str, skip: int, n_rows: int) -> np.ndarray | None:
    """The line of each non-blank line after the first ``skip`` (``None`` if they are not
    ``n_rows``, as when a quoted field spans lines)."""
    numbered = enumerate(text.split("\n"), 1)
    lines = np.fromiter((i for i, line in numbered if i > skip and line.strip()), dtype=np.int64)
    return lines if lines.shape[0] == n_rows else None


def _all_numbers(text: str, delimiter: str, skip: int, width: int) -> np.ndarray | None:
    """The data rows as float64 when every cell is a finite number, else ``None``."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Input line", UserWarning)
            warnings.filterwarnings("ignore", "loadtxt: input contained no data", UserWarning)
            table = np.loadtxt(
                io.StringIO(text), delimiter=delimiter, skiprows=skip, dtype=np.float64,
                comments=None, quotechar='"', ndmin=2,
            )  # fmt: skip
    except ValueError:
        return None
    if table.shape[0] and (table.shape[1] != width or not np.isfinite(table).all()):
        return None
    return table.reshape(-1, width)


def _cells(
    text: str, delimiter: str, path: Path, width: int, *, skip_first: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Every data row's start line and stripped cells; a row of another width is an error."""
    lines, rows = [], []
    for k, (line, row) in enumerate(_rows(text, delimiter, path)):
        if k == 0 and skip_first:
            continue
        if len(row) != width:
            raise ValueError(_ragged(path, line, row, width))
        lines.append(line)
        rows.append(row)
    cells = np.array(rows, dtype=str).reshape(len(rows), width)
    return np.asarray(lines, dtype=np.int64), cells


def _ragged(path: Path, line: int, row: list[str], width: int) -> str:
    message = f"{path}: line {line}: expected {width} fields like the first row, got {len(row)}"
    if len(row) == width + 1 and row[-1] == "":
        message += " (the last one empty: a trailing delimiter?)"
    elif len(row) > width:
        message += "; a row wider than the header would shift the columns"
    return message
