"""The computational-graph picture: DOT text and matplotlib files of the lesson's graphs."""

from __future__ import annotations

import importlib
import math
import re
import sys
import xml.etree.ElementTree as ElementTree

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest

from fungrad import graph

_NODE = re.compile(
    r'^\s*(n\d+) \[label="((?:[^"\\]|\\.)*)", shape=\w+, fillcolor="#[0-9a-f]{6}"\];$'
)
_EDGE = re.compile(r'^\s*(n\d+) -> (n\d+) \[label="((?:[^"\\]|\\.)*)"\];$')
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def parse_dot(text: str) -> tuple[dict, list]:
    """Nodes (id -> label) and edges ``(src, dst, label)`` of ``to_dot``'s text, checking
    that it is one balanced digraph whose edges join declared nodes."""
    lines = text.strip().splitlines()
    assert lines[0] == "digraph computational_graph {" and lines[-1] == "}"
    assert text.count("{") == text.count("}") == 1
    nodes, edges = {}, []
    unescape = lambda s: s.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")  # noqa: E731
    for line in lines[1:-1]:
        if node := _NODE.match(line):
            nodes[node[1]] = unescape(node[2])
        elif edge := _EDGE.match(line):
            edges.append((edge[1], edge[2], unescape(edge[3])))
        else:
            assert re.match(r"^\s*(graph|node|edge) \[.*\];$", line), line
    for src, dst, _ in edges:
        assert src in nodes and dst in nodes
    return nodes, edges


def lesson_y(a, b):
    return a * (a + b)


def mlp_loss(params, x, y):
    """A 2-layer tanh MLP's softmax cross-entropy on a batch, ``y`` holding class indices."""
    h = jnp.tanh(x @ params[0]["w"] + params[0]["b"])
    logits = h @ params[1]["w"] + params[1]["b"]
    log_p = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(log_p, y[:, None], axis=1))


def mlp_point() -> tuple:
    keys = jax.random.split(jax.random.key(0), 3)
    params = [
        {"w": jax.random.normal(keys[0], (3, 5)), "b": jnp.zeros(5)},
        {"w": jax.random.normal(keys[1], (5, 2)), "b": jnp.zeros(2)},
    ]
    x = jax.random.normal(keys[2], (4, 3))
    return params, x, jnp.array([0, 1, 1, 0], dtype=jnp.int32)


def labelled(nodes: dict, edges: list) -> set:
    """Each edge as ``(source label, target label, edge label)``."""
    return {(nodes[src], nodes[dst], label) for src, dst, label in edges}


def test_lesson_y_a_times_a_plus_b_shows_values_and_branch_gradients():
    nodes, edges = parse_dot(graph.to_dot(lesson_y, 3.0, 4.0))
    assert sorted(nodes.values()) == sorted(
        ["a = 3\ngrad 10", "b = 4\ngrad 3", "add", "mul", "lesson_y = 21\ngrad 1"]
    )
    a, b = "a = 3\ngrad 10", "b = 4\ngrad 3"
    assert labelled(nodes, edges) == {
        (a, "add", "value 3 | grad 3"),
        (b, "add", "value 4 | grad 3"),
        (a, "mul", "value 3 | grad 7"),  # a branches: 7 + 3 = dy/da = 10
        ("add", "mul", "value 7 | grad 3"),
        ("mul", "lesson_y = 21\ngrad 1", "value 21 | grad 1"),
    }


def test_lesson_sin_x_cubed_is_a_chain():
    nodes, edges = parse_dot(graph.to_dot(lambda x: jnp.sin(x**3), 2.0))
    x = "x = 2\ngrad " + f"{3 * 4 * math.cos(8):.4g}"
    assert labelled(nodes, edges) == {
        (x, "(·)³", f"value 2 | grad {3 * 4 * math.cos(8):.4g}"),
        ("(·)³", "sin", f"value 8 | grad {math.cos(8):.4g}"),
        ("sin", "out = 0.9894\ngrad 1", "value 0.9894 | grad 1"),
    }


def test_lesson_x_squared_sin_x_branches_add_up_to_the_closed_form():
    nodes, edges = parse_dot(graph.to_dot(lambda x: x**2 * jnp.sin(x), 2.0))
    closed_form = 2 * 2 * math.sin(2) + 4 * math.cos(2)
    x = next(node for node in nodes if nodes[node].startswith("x = 2"))
    assert nodes[x] == f"x = 2\ngrad {closed_form:.4g}"
    from_x = [float(label.split("grad ")[1]) for src, _, label in edges if src == x]
    assert len(from_x) == 2
    assert math.isclose(sum(from_x), closed_form, rel_tol=1e-3)


@pytest.mark.parametrize(
    ("f", "point"),
    [
        (lambda x, y: jnp.sin(x * y) * x + jnp.exp(-y) * x * x, (0.7, -1.3)),
        (lambda x: jnp.tanh(x) * jnp.tanh(x) + x / (1.0 + x**2), (0.4,)),
    ],
)
@pytest.mark.slow
def test_an_input_gradient_is_the_sum_of_its_edges_and_equals_jax(f, point):
    nodes, edges = parse_dot(graph.to_dot(f, *point))
    expected = jax.grad(f, argnums=tuple(range(len(point))))(*point)
    inputs = [node for node, label in nodes.items() if re.match(r"^[xy] = ", label)]
    assert len(inputs) == len(point)
    for node, slope in zip(inputs, expected, strict=True):
        assert nodes[node].endswith(f"grad {float(slope):.4g}")
        parts = [float(label.split("grad ")[1]) for src, _, label in edges if src == node]
        assert math.isclose(sum(parts), float(slope), rel_tol=2e-3, abs_tol=1e-3)


@pytest.mark.slow
def test_pytree_inputs_are_named_by_their_paths_and_arrays_by_shape():
    nodes, edges = parse_dot(graph.to_dot(mlp_loss, *mlp_point()))
    labels = set(nodes.values())
    assert {'params[0]["w"]\nf64[3,5]', 'params[1]["b"]\nf64[2]', "x\nf64[4,3]"} <= labels
    assert {"matmul", "tanh", "log_softmax", "take_along_axis", "sum", "div(·, 4)"} <= labels
    assert ("x\nf64[4,3]", "matmul", "value f64[4,3] | grad f64[4,3]") in labelled(nodes, edges)
    # integer labels are not differentiated: their edges carry a value and no gradient
    assert ("y\ni32[4]", "broadcast", "value i32[4]") in labelled(nodes, edges)


@pytest.mark.slow
def test_library_functions_are_one_node_and_private_helpers_inline():
    def f(x):
        return jnp.sum(jax.nn.relu(2.0 * x) + jnp.where(x > 0, x, 0.0))

    labels = set(parse_dot(graph.to_dot(f, jnp.array([1.0, -2.0])))[0].values())
    assert {"relu", "mul(2, ·)", "gt(·, 0)", "select", "const\n[0, 0]"} <= labels
    assert "_where" not in str(labels) and "max" not in labels


def test_a_jitted_function_is_drawn_inside_and_expand_calls_opens_every_call():
    labels = set(parse_dot(graph.to_dot(jax.jit(lesson_y), 3.0, 4.0))[0].values())
    assert {"add", "mul"} <= labels

    def f(x):
        return jnp.sum(jax.nn.log_softmax(x))

    closed = set(parse_dot(graph.to_dot(f, jnp.ones(3)))[0].values())
    opened = set(parse_dot(graph.to_dot(f, jnp.ones(3), expand_calls=True))[0].values())
    assert "log_softmax" in closed and "exp" not in closed
    assert "log_softmax" not in opened and {"exp", "log"} <= opened


def test_dot_labels_are_escaped():
    nodes, _ = parse_dot(graph.to_dot(lambda d: d['say "hi"\\'] * 2.0, {'say "hi"\\': 1.0}))
    assert 'd["say \\"hi\\"\\\\"] = 1\ngrad 2' in nodes.values()
    text = graph.to_dot(lesson_y, 3.0, 4.0, title='y "quoted"')
    assert 'label="y \\"quoted\\""' in text


@pytest.mark.parametrize("suffix", [".svg", ".png", ".pdf"])
@pytest.mark.slow
def test_draw_writes_the_format_its_suffix_names(tmp_path, suffix):
    pyplot = "matplotlib.pyplot" in sys.modules
    backend = dict.__getitem__(matplotlib.rcParams, "backend")  # without resolving it
    path = graph.draw(lesson_y, 3.0, 4.0, path=tmp_path / f"y{suffix}", title="y = a (a + b)")
    assert path == tmp_path / f"y{suffix}" and path.stat().st_size > 0
    data = path.read_bytes()
    if suffix == ".png":
        assert data.startswith(PNG_MAGIC)
    elif suffix == ".pdf":
        assert data.startswith(b"%PDF")
    else:
        assert data.lstrip().startswith((b"<?xml", b"<svg"))
        texts = {e.text for e in ElementTree.fromstring(data).iter() if e.tag.endswith("text")}
        assert {"a = 3", "grad 10", "b = 4", "grad 3", "3", "7", "21"} <= texts
    # the user's backend is left alone: no pyplot, no backend chosen or switched
    assert dict.__getitem__(matplotlib.rcParams, "backend") is backend
    assert ("matplotlib.pyplot" in sys.modules) == pyplot


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.slow
def test_draw_an_mlp_with_pytree_inputs_and_the_figure_grows_with_the_graph(tmp_path):
    small = png_size(graph.draw(lesson_y, 3.0, 4.0, path=tmp_path / "y.png"))
    large = png_size(graph.draw(mlp_loss, *mlp_point(), path=tmp_path / "mlp.png"))
    assert large[0] > 2 * small[0]


def overlap(a: tuple, b: tuple) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.slow
def test_the_layout_keeps_boxes_and_edge_labels_apart():
    draw = importlib.import_module("fungrad.graph.layout")
    scene = importlib.import_module("fungrad.graph.scene")

    def residual(x, w):
        h = jnp.tanh(x @ w)
        return jnp.sum(jnp.tanh(h @ w) + x + h * h)

    for f, point in [(mlp_loss, mlp_point()), (residual, (jnp.ones((2, 3)), jnp.eye(3)))]:
        g = scene._build(f, point, expand_calls=False)
        layout = draw._layout(g)
        lanes = draw._lanes(g, layout, draw._ports(layout))
        boxes = []
        for i in range(len(g.nodes)):
            item = ("n", i)
            c, (w, h), y = layout.column[item], layout.size[item], layout.y[item]
            x = layout.left[c] + layout.width[c] / 2
            boxes.append((x - w / 2, y - h / 2, x + w / 2, y + h / 2))
        half = draw._LABEL_HEIGHT / 2
        boxes += [(x0, y - half + 1e-9, x1, y + half - 1e-9) for x0, x1, y in lanes.values()]
        overlaps = [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :] if overlap(a, b)]
        assert not overlaps


def test_bad_path_suffix_and_output_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"path: expected .*\.svg, \.png, \.pdf.*graph\.jpg"):
        graph.draw(lesson_y, 3.0, 4.0, path=tmp_path / "graph.jpg")
    with pytest.raises(TypeError, match="scalar-output"):
        graph.draw(lambda x: x * 2.0, jnp.ones(3), path=tmp_path / "g.svg")
    with pytest.raises(TypeError, match="scalar-output"):
        graph.to_dot(lambda x: (x, x), 1.0)
    with pytest.raises(TypeError, match="real-valued outputs"):
        graph.to_dot(lambda n: n * 2, np.int32(3))
    assert not list(tmp_path.iterdir())
