"""A griffe extension for the API pages: fungrad's docstrings, written for reading in source,
carry a little reStructuredText; this renders it as Markdown before mkdocstrings parses them.

- ``Example:`` sections become ``Examples:`` (griffe only parses the plural as code examples);
- roles such as :func:`fungrad.fit` become code spans;
- simple tables (columns ruled with ``=``) become Markdown tables;
- a paragraph ending in ``::`` ends in ``:`` (its indented block is already a code block);
- the escaped space ``\\ `` disappears, as in reStructuredText.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|exc|obj):`~?([^`]+)`")
_BORDER = re.compile(r"^ *=+( +=+)+ *$")


def _role(match: re.Match) -> str:
    return f"`{match.group(1)}`"


_CODE_SPAN = re.compile(r"(`+).+?\1")


def _escape_pipes(cell: str) -> str:
    """Escape ``|`` outside code spans (the table extension leaves code spans alone)."""
    out, end = [], 0
    for span in _CODE_SPAN.finditer(cell):
        out += [cell[end : span.start()].replace("|", "\\|"), span.group()]
        end = span.end()
    return "".join([*out, cell[end:].replace("|", "\\|")])


def _cells(line: str, starts: list[int]) -> list[str]:
    ends = starts[1:] + [None]
    return [_escape_pipes(line[a:b].strip()) for a, b in zip(starts, ends, strict=True)]


def _tables(lines: list[str]) -> list[str]:
    """Rewrite every simple table (a header between two rules, rows, a closing rule)."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not _BORDER.match(line):
            out.append(line)
            i += 1
            continue
        starts = [m.start() for m in re.finditer(r"=+", line)]
        indent = line[: len(line) - len(line.lstrip())]
        rows, i = [], i + 1
        while i < len(lines) and not _BORDER.match(lines[i]):
            rows.append(_cells(lines[i], starts))
            i += 1
        i += 1  # the rule under the header
        header, rows = rows[0] if rows else [""] * len(starts), []
        while i < len(lines) and not _BORDER.match(lines[i]):
            if lines[i].strip():
                rows.append(_cells(lines[i], starts))
            i += 1
        i += 1  # the closing rule
        for row in [header, ["---"] * len(starts), *rows]:
            out.append(indent + "| " + " | ".join(row) + " |")
    return out


def markdown(text: str) -> str:
    lines = text.split("\n")
    lines = ["Examples:" if line == "Example:" else line for line in lines]
    lines = _tables(lines)
    lines = [
        line[:-1] if line.endswith("::") and not line.lstrip().startswith(">>>") else line
        for line in lines
    ]
    return _ROLE.sub(_role, "\n".join(lines)).replace("\\ ", "")


class SphinxMarkup(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
