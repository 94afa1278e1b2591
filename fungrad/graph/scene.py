"""The drawable computational graph: nodes, edges and their labels, built from a recording.

``f`` is recorded at ``args`` (``interpreter.record``); each equation becomes a node (or, for a
nested call, its inside, see :mod:`fungrad.graph.draw`), each use of a value an edge carrying
the value forward and the cotangent that its consumer's VJP rule hands back for that use.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import ClosedJaxpr, Literal, Var

from fungrad.graph import interpreter, registry

if TYPE_CHECKING:  # matplotlib is imported when a picture is drawn: it takes a second
    pass

_SUFFIXES = (".svg", ".png", ".pdf")
_VALUE_COLOUR, _GRAD_COLOUR = "#1d4e89", "#c0392b"
_FILL = {"input": "#dbe9f6", "const": "#eeeeee", "op": "#ffffff", "output": "#d5f0d5"}
_NAMES = {"reduce_sum": "sum", "broadcast_in_dim": "broadcast", "select_n": "select"}
_NAMES |= {"logistic": "sigmoid"}
_INLINE = {"closed_call": "call_jaxpr", "remat2": "jaxpr", "checkpoint": "jaxpr"}
_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


@dataclasses.dataclass
class _Node:
    kind: str  # "input", "const", "op" or "output"
    label: str
    grad: str | None = None


@dataclasses.dataclass(frozen=True)
class _Edge:
    src: int
    dst: int
    value: str
    grad: str | None


@dataclasses.dataclass(frozen=True)
class _Const:
    value: Any
    key: int


@dataclasses.dataclass
class _Graph:
    nodes: list = dataclasses.field(default_factory=list)
    edges: list = dataclasses.field(default_factory=list)
    const_nodes: dict = dataclasses.field(default_factory=dict)

    def add(self, node: _Node) -> int:
        self.nodes.append(node)
        return len(self.nodes) - 1


def _text(x: Any) -> str:
    """A scalar as a number to 4 significant digits; an array as its dtype and shape."""
    x = np.asarray(x)
    if x.shape:
        return jax.core.ShapedArray(x.shape, x.dtype).str_short(short_dtypes=True)
    if x.dtype == bool or jnp.issubdtype(x.dtype, jnp.integer):
        return str(x.item())
    return f"{float(x):.4g}"


def _grad_text(ct: Any) -> str:
    """A cotangent as ``_text`` does, marking an array through which nothing flows back."""
    text = _text(ct)
    return f"zeros {text}" if np.shape(ct) and not np.any(np.asarray(ct)) else text


def _read(values: dict, atom: Any) -> Any:
    return atom.val if isinstance(atom, Literal) else values[atom]


def _call_name(eqn: Any) -> str | None:
    """The name of a call a user made by name (``None`` for a call to draw inline)."""
    name = eqn.primitive.name
    if name in ("custom_jvp_call", "custom_vjp_call"):
        info = eqn.params["call_jaxpr"].jaxpr.debug_info
        return getattr(info, "func_name", None) or name
    if name in ("jit", "pjit") and str(eqn.params["name"]).isidentifier():
        return None if eqn.params["name"].startswith("_") else eqn.params["name"]
    return None


def _inner_jaxpr(eqn: Any, expand_calls: bool) -> ClosedJaxpr | None:
    """The jaxpr to draw inline in place of ``eqn``, or ``None`` to draw it as one node."""
    name = eqn.primitive.name
    if name in ("jit", "pjit") and (expand_calls or _call_name(eqn) is None):
        return eqn.params["jaxpr"]
    if name in _INLINE:
        inner = eqn.params[_INLINE[name]]
        return inner if isinstance(inner, ClosedJaxpr) else ClosedJaxpr(inner, ())
    return None


def _op_name(eqn: Any) -> str:
    """The readable name of an operation: ``mul``, ``(·)³``, ``matmul``, ``sum(axis=1)``."""
    name, params = eqn.primitive.name, eqn.params
    if _call_name(eqn) is not None:
        return _call_name(eqn)
    if name == "integer_pow":
        return "(·)" + str(params["y"]).translate(_SUPERSCRIPT)
    if name == "square":
        return "(·)²"
    if name == "dot_general":
        (lhs_contract, rhs_contract), _ = params["dimension_numbers"]
        rank = len(eqn.invars[0].aval.shape)
        if tuple(lhs_contract) == (rank - 1,) and tuple(rhs_contract) in ((0,), (rank - 1,)):
            return "dot" if rank == 1 and len(eqn.invars[1].aval.shape) == 1 else "matmul"
    if "axes" in params and name.startswith(("reduce_", "arg")):
        axes, rank = tuple(params["axes"]), len(eqn.invars[0].aval.shape)
        if axes != tuple(range(rank)):
            return f"{_NAMES.get(name, name)}(axis={axes[0] if len(axes) == 1 else axes})"
    if name == "convert_element_type":
        return f"astype({_text(np.zeros((1,), params['new_dtype'])).split('[')[0]})"
    if name == "transpose":
        return f"transpose{tuple(params['permutation'])}"
    return _NAMES.get(name, name)


def _contributions(eqn: Any, values: dict, cotangents: dict) -> list | None:
    """What ``eqn``'s VJP rule hands back to each input (``None``: nothing flows back)."""
    if not any(v in cotangents for v in eqn.outvars):
        return None
    g = [cotangents[v] if v in cotangents else interpreter.zeros(v.aval) for v in eqn.outvars]
    ans = [values[v] for v in eqn.outvars]
    ins = [_read(values, atom) for atom in eqn.invars]
    rule = registry.rule_for(eqn.primitive, eqn.source_info)
    if eqn.primitive.multiple_results:
        return list(rule(g, ans, *ins, **eqn.params))
    return list(rule(g[0], ans[0], *ins, **eqn.params))


def _live(jaxpr: Any) -> list:
    """The equations an output depends on, in order."""
    needed = {v for v in jaxpr.outvars if isinstance(v, Var)}
    live = []
    for eqn in reversed(jaxpr.eqns):
        if any(v in needed for v in eqn.outvars):
            live.append(eqn)
            needed.update(v for v in eqn.invars if isinstance(v, Var))
    return live[::-1]


def _origin(sources: dict, atom: Any) -> Any:
    """Where ``atom`` comes from: a node id, or a ``_Const``."""
    return _Const(atom.val, id(atom)) if isinstance(atom, Literal) else sources[atom]


def _source(graph: _Graph, src: Any) -> Any:
    """A node id, or a ``_Const`` for a scalar constant; array constants get a grey node."""
    if not (isinstance(src, _Const) and np.shape(src.value)):
        return src
    if src.key not in graph.const_nodes:
        value = np.asarray(src.value)
        if value.size <= 4:
            label = "const\n[" + ", ".join(_text(v) for v in value.ravel()) + "]"
        elif np.all(value == value.ravel()[0]):
            label = f"const {_text(value.ravel()[0])}"
        else:
            label = "const"
        graph.const_nodes[src.key] = graph.add(_Node("const", label))
    return graph.const_nodes[src.key]


def _walk(graph, jaxpr, values, cotangents, sources, expand: bool, whole: bool = False) -> None:
    """Add the nodes and edges of ``jaxpr``'s live equations; ``sources`` maps Var -> node.

    ``whole``: ``jaxpr`` is the whole graph, so a call that is its only equation is inlined.
    """
    live = _live(jaxpr)
    whole = whole and len(live) == 1
    for eqn in live:
        inner = _inner_jaxpr(eqn, expand or whole)
        origins = [_origin(sources, atom) for atom in eqn.invars]
        if all(isinstance(s, _Const) for s in origins):
            sources.update((v, _Const(values[v], id(v))) for v in eqn.outvars)
        elif inner is not None:
            _walk_call(graph, eqn, inner, (values, cotangents, sources), expand, whole)
        else:
            _add_op(graph, eqn, [_source(graph, s) for s in origins], values, cotangents, sources)


def _walk_call(graph, eqn, inner, outer: tuple, expand: bool, whole: bool) -> None:
    """Draw a call inline: run its body forward and back, and walk it."""
    values, cotangents, sources = outer
    args = [_read(values, atom) for atom in eqn.invars]
    active = [isinstance(atom, Var) and atom in cotangents for atom in eqn.invars]
    trace = interpreter.forward(inner.jaxpr, inner.consts, args, active)
    _, inner_cts = interpreter.backward(
        inner.jaxpr, trace, [cotangents.get(v) for v in eqn.outvars]
    )
    inner_sources = {
        v: _Const(c, id(v)) for v, c in zip(inner.jaxpr.constvars, inner.consts, strict=True)
    }
    inner_sources.update(
        (v, _origin(sources, atom)) for v, atom in zip(inner.jaxpr.invars, eqn.invars, strict=True)
    )
    _walk(graph, inner.jaxpr, trace.values, inner_cts, inner_sources, expand, whole)
    sources.update(
        (v, _origin(inner_sources, out))
        for v, out in zip(eqn.outvars, inner.jaxpr.outvars, strict=True)
    )


def _add_op(graph, eqn, srcs, values, cotangents, sources) -> None:
    """One node for ``eqn``, an edge per non-constant input, scalar constants in the label."""
    label = _op_name(eqn)
    if any(isinstance(s, _Const) for s in srcs):
        args = [_text(s.value) if isinstance(s, _Const) else "·" for s in srcs]
        label = f"{label}({', '.join(args)})"
    node = graph.add(_Node("op", label))
    contributions = _contributions(eqn, values, cotangents)
    for i, (atom, src) in enumerate(zip(eqn.invars, srcs, strict=True)):
        if isinstance(src, _Const):
            continue
        value = _read(values, atom)
        grad = None
        if isinstance(atom, Var) and atom in cotangents:
            ct = contributions[i] if contributions is not None else None
            grad = _grad_text(jnp.zeros_like(value) if ct is None else ct)
        graph.edges.append(_Edge(src, node, _text(value), grad))
    sources.update((v, node) for v in eqn.outvars)


def _argument_names(f: Callable, count: int) -> list[str]:
    """The names of ``f``'s first ``count`` positional parameters (``args[i]`` if unknown)."""
    try:
        parameters = list(inspect.signature(f).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    names: list[str] = []
    for p in parameters:
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
        elif p.kind == p.VAR_POSITIONAL:
            names += [f"{p.name}[{i}]" for i in range(count - len(names))]
    return names[:count] + [f"args[{i}]" for i in range(len(names), count)]


def _input_names(f: Callable, args: tuple) -> list[str]:
    """One name per flattened input: ``x``, ``params[0]["w"]``."""
    names = _argument_names(f, len(args))
    result = []
    for path, _ in jax.tree_util.tree_flatten_with_path(args)[0]:
        text = names[path[0].idx]
        for key in path[1:]:
            if isinstance(key, jax.tree_util.DictKey):
                text += f"[{json.dumps(key.key) if isinstance(key.key, str) else repr(key.key)}]"
            elif isinstance(key, jax.tree_util.GetAttrKey):
                text += f".{key.name}"
            else:
                text += f"[{getattr(key, 'idx', getattr(key, 'key', key))}]"
        result.append(text)
    return result


def _check_output(recording: interpreter.Recording) -> None:
    """The checks of ``graph.grad``: the picture's cotangents are a scalar's gradient."""
    outvars = recording.jaxpr.jaxpr.outvars
    if recording.out_tree.num_leaves != 1 or recording.out_tree.num_nodes != 1:
        raise TypeError(
            "Gradient only defined for scalar-output functions. "
            f"Output was a pytree {recording.out_tree}; return a scalar float."
        )
    aval = outvars[0].aval
    if aval.shape != ():
        raise TypeError(
            f"Gradient only defined for scalar-output functions. Output had shape: {aval.shape}."
        )
    if not jnp.issubdtype(aval.dtype, jnp.floating):
        raise TypeError(
            "grad requires real-valued outputs (output dtype that is a sub-dtype of "
            f"np.floating), but got {aval.dtype}."
        )


def _build(f: Callable, args: tuple, expand_calls: bool) -> _Graph:
    recording = interpreter.record(f, *args)
    _check_output(recording)
    jaxpr, values, cotangents = recording.jaxpr.jaxpr, recording.values, recording.cotangents
    graph, sources = _Graph(), {}
    for v, name in zip(jaxpr.invars, _input_names(f, args), strict=True):
        scalar = v.aval.shape == ()
        label = f"{name} = {_text(values[v])}" if scalar else f"{name}\n{_text(values[v])}"
        grad = v in cotangents or interpreter.is_float(v.aval)
        total = cotangents.get(v, jnp.zeros_like(values[v]))
        sources[v] = graph.add(_Node("input", label, _text(total) if grad and scalar else None))
    sources.update(
        (v, _Const(c, id(v))) for v, c in zip(jaxpr.constvars, recording.jaxpr.consts, strict=True)
    )
    _walk(graph, jaxpr, values, cotangents, sources, expand_calls, whole=True)
    name = getattr(f, "__name__", "out")
    out = jaxpr.outvars[0]
    label = f"{name if name.isidentifier() else 'out'} = {_text(_read(values, out))}"
    seed = _text(cotangents.get(out, 1.0))  # absent when the output depends on no float input
    node = graph.add(_Node("output", label, seed))
    src = _source(graph, _origin(sources, out))
    if not isinstance(src, _Const):
        graph.edges.append(_Edge(src, node, _text(_read(values, out)), seed))
    return graph
