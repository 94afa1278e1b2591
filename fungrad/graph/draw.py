"""The computational-graph picture: values forward, cotangents back, on every edge.

``f`` is recorded at ``args`` (see ``interpreter.record``) and drawn as the lesson draws it:
inputs, one node per operation, the output; each edge carries the value that flows forward
along it and the cotangent that flows back along it. A value used twice has two edges, and
the gradient written on its node is the sum of their cotangents (``xbar = sum_k xbar^(k)``).
Each edge's cotangent is what its consumer's VJP rule hands back for that one use.

Nested calls: a function a JAX user calls by name stays one node named after it (``relu``,
``log_softmax``, ``take_along_axis``, a user's jitted ``layer``); ``custom_jvp`` and
``custom_vjp`` functions are always one node, their derivative being defined as a whole.
Private or anonymous ``jit`` helpers (``jnp.where``'s ``_where``, a jitted lambda), ``remat``,
``closed_call``, and a call that is the whole graph are drawn inline; ``expand_calls=True``
draws every ``jit`` inline. Values that depend on no input are constants: a scalar is written
into its consumer's label (``mul(·, 2)``), an array is a grey node.

Example (``a`` is used twice; its gradient ``2a + b = 10`` is the ``7 + 3`` of its uses):
    >>> dot = to_dot(lambda a, b: a * (a + b), 3.0, 4.0)
    >>> "value 3 | grad 7" in dot and "value 3 | grad 3" in dot
    True
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # matplotlib is imported when a picture is drawn: it takes a second
    pass

__all__ = ["draw", "to_dot"]

from fungrad.graph.layout import _layout, _render
from fungrad.graph.scene import _FILL, _SUFFIXES, _build, _Graph


def _quote(text: str) -> str:
    """A DOT string literal: backslashes and quotes escaped, newlines as ``\\n``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dot(graph: _Graph, title: str | None) -> str:
    shapes = {"input": "ellipse", "const": "note", "op": "box", "output": "ellipse"}
    caption = f", label={_quote(title)}, labelloc=t" if title else ""
    lines = [
        "digraph computational_graph {",
        f"  graph [rankdir=LR{caption}];",
        '  node [fontname="Helvetica", fontsize=11, style=filled];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for i, node in enumerate(graph.nodes):
        text = node.label + ("" if node.grad is None else f"\ngrad {node.grad}")
        colour = _FILL[node.kind]
        lines.append(
            f'  n{i} [label={_quote(text)}, shape={shapes[node.kind]}, fillcolor="{colour}"];'
        )
    for edge in graph.edges:
        text = f"value {edge.value}" + ("" if edge.grad is None else f" | grad {edge.grad}")
        lines.append(f"  n{edge.src} -> n{edge.dst} [label={_quote(text)}];")
    return "\n".join([*lines, "}"]) + "\n"


def to_dot(f: Callable, *args: Any, expand_calls: bool = False, title: str | None = None) -> str:
    """Graphviz DOT text of the computational graph of ``f`` at ``args``.

    Input nodes are named after ``f``'s parameters and the paths into pytree arguments
    (``params[0]["w"]``); a scalar input shows its value and its gradient ``d out / d x``.
    Each edge is labelled ``value v | grad g``: the forward value along it and the
    cotangent its consumer hands back for that use (numbers for scalars, to 4 significant
    digits; dtype and shape such as ``f32[32,10]`` for arrays). Render it with
    ``dot -Tsvg graph.dot -o graph.svg``, or use ``draw`` (matplotlib only). A function
    called by name (``jax.nn.relu``, ``log_softmax``) is one node, ``jnp``'s private helpers
    are drawn inline (see the module docstring).

    Args:
        f: a function of pytrees of arrays returning a scalar float.
        *args: the point to record the graph at.
        expand_calls: draw every nested ``jit`` call inline instead of as one node.
        title: a caption for the graph.

    Returns:
        The DOT text of a ``digraph``.

    Raises:
        TypeError: for a non-scalar or non-float output, as ``graph.grad`` does.

    Example:
        >>> dot = to_dot(lambda a, b: a * (a + b), 3.0, 4.0)
        >>> print("\\n".join(line for line in dot.splitlines() if "->" in line))
          n0 -> n2 [label="value 3 | grad 3"];
          n1 -> n2 [label="value 4 | grad 3"];
          n0 -> n3 [label="value 3 | grad 7"];
          n2 -> n3 [label="value 7 | grad 3"];
          n3 -> n4 [label="value 21 | grad 1"];
    """
    return _dot(_build(f, args, expand_calls), title)


def draw(
    f: Callable,
    *args: Any,
    path: str | os.PathLike = "graph.svg",
    expand_calls: bool = False,
    title: str | None = None,
) -> Path:
    """Draw the computational graph of ``f`` at ``args`` to an SVG, PNG or PDF file.

    The graph of ``to_dot``, laid out left to right with matplotlib alone: a node's column
    is its depth from the inputs; each arrow carries two numbers, the value computed forward
    (above) and the cotangent passed back (below, in red), ``d out / d value`` for that use.
    Where a value branches, its node's gradient is the sum of its arrows' cotangents. The
    figure grows with the graph; the global matplotlib backend is left alone. It reads best
    for graphs of up to a few dozen operations (a lesson's graph, a small model's loss);
    Graphviz lays out larger ones from ``to_dot``'s text.

    Args:
        f: a function of pytrees of arrays returning a scalar float.
        *args: the point to record the graph at.
        path: the file to write; its suffix (``.svg``, ``.png``, ``.pdf``) picks the format.
        expand_calls: draw every nested ``jit`` call inline instead of as one node.
        title: a caption above the graph.

    Returns:
        ``path``, as a ``Path``.

    Raises:
        ValueError: if ``path`` does not end in ``.svg``, ``.png`` or ``.pdf``.
        TypeError: for a non-scalar or non-float output, as ``graph.grad`` does.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> draw(lambda a, b: a * (a + b), 3.0, 4.0, path=f"{folder}/y.png").stat().st_size > 0
        True
    """
    path = Path(path)
    if path.suffix.lower() not in _SUFFIXES:
        raise ValueError(
            f"path: expected a file name ending in {', '.join(_SUFFIXES)}, got {str(path)!r}"
        )
    import matplotlib

    graph = _build(f, args, expand_calls)
    figure = _render(graph, _layout(graph), title)
    width, height = figure.get_size_inches()
    # a large graph gets fewer dots per inch: at most 30000 pixels a side, 40 million in all
    dpi = min(150, 30000 / max(width, height), (4e7 / (width * height)) ** 0.5)
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "fungrad"}):
        figure.savefig(path, format=path.suffix.lower()[1:], dpi=dpi)
    return path
