"""Reverse mode over a jaxpr: record the graph, run it forward keeping values, walk back.

This is backpropagation on the computational graph, as the lesson draws it. ``jax.make_jaxpr``
records ``f`` as a list of equations ``y = p(x_1, ..., x_n)`` (the graph's nodes). The
forward pass evaluates them in order and keeps every value. The backward pass visits them in
reverse with the cotangent ``ybar = dL/dy`` of each output and asks the primitive's
hand-written rule (see ``registry``) for ``xbar_i = (dy/dx_i)^T ybar``:

- along a chain ``x -> u -> y`` cotangents multiply: ``xbar = (du/dx)^T (dy/du)^T ybar``;
- where a value branches (is used by several equations) its cotangent is the sum of what
  each use hands back: ``xbar = sum_k xbar^(k)``.

Only values that depend on a differentiated input (floating point) are *active*; the other
values (constants, integers, booleans) get no cotangent, and their equations need no rule.

Example (the lesson's ``y = a (a + b)`` at ``a = 3, b = 4``):
    >>> import jax.numpy as jnp
    >>> rec = record(lambda a, b: a * (a + b), jnp.float32(3.0), jnp.float32(4.0))
    >>> a, b = rec.jaxpr.jaxpr.invars
    >>> float(rec.values[rec.jaxpr.jaxpr.outvars[0]]), float(rec.cotangents[a]), float(rec.cotangents[b])
    (21.0, 10.0, 3.0)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax._src import source_info_util
from jax.extend.core import ClosedJaxpr, Jaxpr, Var

from fungrad.graph import registry


def is_float(aval: Any) -> bool:
    """Whether values of abstract type ``aval`` are differentiable (floating point)."""
    dtype = getattr(aval, "dtype", None)
    return dtype is not None and jnp.issubdtype(dtype, jnp.inexact)


def zeros(aval: Any) -> jax.Array:
    """An array of zeros with ``aval``'s shape and dtype."""
    return jnp.zeros(aval.shape, aval.dtype)


class Trace(NamedTuple):
    """What the forward pass keeps: the outputs, every value, and the active variables."""

    outs: list
    values: dict
    answers: list
    active: set


def _read(values: dict, atom: Any) -> Any:
    if isinstance(atom, Var):
        return values[atom]
    return atom.val if hasattr(atom.val, "dtype") else np.asarray(atom.val, atom.aval.dtype)


def _bind(eqn: Any, ins: list) -> Any:
    """Evaluate one equation, keeping its source line for anything traced from it."""
    params = eqn.primitive.get_bind_params(eqn.params)
    with source_info_util.user_context(eqn.source_info.traceback), eqn.ctx.manager:
        return eqn.primitive.bind(*ins, **params)


def forward(
    jaxpr: Jaxpr, consts: Sequence, args: Sequence, active_args: Sequence[bool] | None = None
) -> Trace:
    """Evaluate ``jaxpr`` equation by equation, keeping every value.

    Args:
        jaxpr: the open jaxpr to run.
        consts: values of ``jaxpr.constvars`` (never differentiated).
        args: values of ``jaxpr.invars``.
        active_args: which ``args`` are differentiated (default: every floating one).

    Returns:
        A ``Trace``: outputs, ``values`` (Var -> value), ``answers`` (one output list per
        equation) and ``active`` (the Vars that depend on a differentiated input).
    """
    values: dict = dict(zip(jaxpr.constvars, consts, strict=True))
    values.update(zip(jaxpr.invars, args, strict=True))
    flags = [True] * len(args) if active_args is None else active_args
    active = {v for v, a in zip(jaxpr.invars, flags, strict=True) if a and is_float(v.aval)}
    answers = []
    for eqn in jaxpr.eqns:
        ins = [_read(values, atom) for atom in eqn.invars]
        outs = _bind(eqn, ins)
        outs = list(outs) if eqn.primitive.multiple_results else [outs]
        values.update(zip(eqn.outvars, outs, strict=True))
        answers.append(outs)
        if any(isinstance(atom, Var) and atom in active for atom in eqn.invars):
            active.update(v for v in eqn.outvars if is_float(v.aval))
    return Trace([_read(values, atom) for atom in jaxpr.outvars], values, answers, active)


# The source of the call equations whose rules are running: an equation inside a library's
# jitted function (jnp.sort) has no user frame of its own, so errors name the user's call.
_ENCLOSING: list = []


def _user_source(source_info: Any) -> Any:
    """``source_info`` if it names a user's line, else the innermost enclosing call's."""
    if source_info_util.summarize(source_info) or not _ENCLOSING:
        return source_info
    return _ENCLOSING[-1]


def _accumulate(cotangents: dict, var: Var, ct: Any, name: str) -> None:
    """Add ``ct`` into ``var``'s cotangent: the sum over the value's uses."""
    shape, dtype = var.aval.shape, var.aval.dtype
    if jnp.shape(ct) != shape:
        raise ValueError(
            f"the VJP rule of '{name}' returned a cotangent of shape {jnp.shape(ct)} for an "
            f"input of shape {shape}; a rule must return each input's exact shape"
        )
    if jnp.result_type(ct) != dtype:
        ct = jnp.asarray(ct, dtype=dtype)
    cotangents[var] = cotangents[var] + ct if var in cotangents else ct


def backward(jaxpr: Jaxpr, trace: Trace, out_cts: Sequence) -> tuple[list, dict]:
    """Walk ``jaxpr`` in reverse, from the outputs' cotangents to the inputs'.

    Args:
        jaxpr: the jaxpr that ``trace`` ran.
        trace: the forward pass's ``Trace``.
        out_cts: one cotangent per output, or ``None`` for an output not differentiated.

    Returns:
        ``(in_cts, cotangents)``: one cotangent per ``jaxpr.invars`` (``None`` where no
        cotangent reached it, or it is not active), and the dict Var -> cotangent of every
        active value the walk reached.
    """
    cotangents: dict = {}
    for var, ct in zip(jaxpr.outvars, out_cts, strict=True):
        if ct is not None and isinstance(var, Var) and var in trace.active:
            _accumulate(cotangents, var, ct, "output")
    for eqn, ans in zip(reversed(jaxpr.eqns), reversed(trace.answers), strict=True):
        if not any(v in cotangents for v in eqn.outvars):
            continue
        g = [cotangents[v] if v in cotangents else zeros(v.aval) for v in eqn.outvars]
        ins = [_read(trace.values, atom) for atom in eqn.invars]
        source_info = _user_source(eqn.source_info)
        rule = registry.rule_for(eqn.primitive, source_info)
        _ENCLOSING.append(source_info)
        try:
            if eqn.primitive.multiple_results:
                in_cts = rule(g, ans, *ins, **eqn.params)
            else:
                in_cts = rule(g[0], ans[0], *ins, **eqn.params)
        finally:
            _ENCLOSING.pop()
        if len(in_cts) != len(eqn.invars):
            raise ValueError(
                f"the VJP rule of '{eqn.primitive.name}' returned {len(in_cts)} cotangents "
                f"for {len(eqn.invars)} inputs; a rule returns one entry (or None) per input"
            )
        for atom, ct in zip(eqn.invars, in_cts, strict=True):
            if ct is not None and isinstance(atom, Var) and atom in trace.active:
                _accumulate(cotangents, atom, ct, eqn.primitive.name)
    return [cotangents.get(v) for v in jaxpr.invars], cotangents


def vjp_jaxpr(
    closed: ClosedJaxpr, args: Sequence, out_cts: Sequence, instantiate: bool = True
) -> list:
    """Cotangents of a closed jaxpr's inputs: a forward pass, then the backward walk.

    The engine applied to a sub-graph; call and control-flow rules use it on the jaxprs
    in their parameters. Every floating input is differentiated; ``out_cts`` entries for
    integer outputs are ignored.

    Args:
        closed: the closed jaxpr.
        args: its input values.
        out_cts: one cotangent (or ``None``) per output.
        instantiate: give zeros (of the input's dtype) instead of ``None``.

    Returns:
        One cotangent per input.
    """
    trace = forward(closed.jaxpr, closed.consts, args)
    cts = [
        ct if is_float(v.aval) else None
        for v, ct in zip(closed.jaxpr.outvars, out_cts, strict=True)
    ]
    in_cts, _ = backward(closed.jaxpr, trace, cts)
    if not instantiate:
        return in_cts
    return [
        zeros(v.aval) if ct is None else ct
        for v, ct in zip(closed.jaxpr.invars, in_cts, strict=True)
    ]


class Traced(NamedTuple):
    """``f`` recorded at flattened inputs: the jaxpr, the pytree defs, the flat inputs."""

    jaxpr: ClosedJaxpr
    flat_args: list
    in_tree: Any
    out_tree: Any
    aux_tree: Any
    num_out: int


def trace_function(f: Callable, args: tuple, has_aux: bool = False) -> Traced:
    """Record ``f(*args)`` with ``jax.make_jaxpr`` over the flattened leaves of ``args``.

    With ``has_aux``, ``f`` returns ``(out, aux)`` and the jaxpr's outputs are the leaves of
    ``out`` followed by those of ``aux``.
    """
    flat_args, in_tree = jax.tree_util.tree_flatten(args)
    flat_args = [x if isinstance(x, jax.Array) else jnp.asarray(x) for x in flat_args]
    trees: dict = {}

    def flat_f(*leaves):
        result = f(*jax.tree_util.tree_unflatten(in_tree, leaves))
        if has_aux:
            if not (isinstance(result, tuple) and len(result) == 2):
                raise TypeError(
                    "with has_aux=True the function must return a pair (output, aux), "
                    f"got {type(result).__name__}"
                )
            result, aux = result
        else:
            aux = None
        out_leaves, trees["out"] = jax.tree_util.tree_flatten(result)
        aux_leaves, trees["aux"] = jax.tree_util.tree_flatten(aux)
        trees["num_out"] = len(out_leaves)
        return out_leaves + aux_leaves

    closed = jax.make_jaxpr(flat_f)(*flat_args)
    aux_tree = trees["aux"] if has_aux else None
    return Traced(closed, flat_args, in_tree, trees["out"], aux_tree, trees["num_out"])


@dataclasses.dataclass(frozen=True)
class Recording:
    """The computational graph of ``f`` at some inputs, with values and cotangents.

    Attributes:
        jaxpr: the ``ClosedJaxpr`` of ``f`` over its flattened inputs.
        values: jaxpr Var -> forward value.
        cotangents: jaxpr Var -> cotangent, the outputs seeded with ones.
        in_tree: the pytree def of the inputs (a tuple of the arguments).
        out_tree: the pytree def of the output.
    """

    jaxpr: ClosedJaxpr
    values: dict
    cotangents: dict
    in_tree: Any
    out_tree: Any


def record(f: Callable, *args: Any) -> Recording:
    """Record ``f`` at ``args``, run it forward and backward, and keep every value.

    Args:
        f: a function of pytrees of arrays.
        *args: its arguments.

    Returns:
        A ``Recording``; each output's cotangent is seeded with ``ones_like`` (for a scalar
        output, ``dL/dy = 1`` with ``L = y``).
    """
    traced = trace_function(f, args)
    jaxpr = traced.jaxpr.jaxpr
    trace = forward(jaxpr, traced.jaxpr.consts, traced.flat_args)
    _, cotangents = backward(jaxpr, trace, [jnp.ones_like(out) for out in trace.outs])
    return Recording(traced.jaxpr, trace.values, cotangents, traced.in_tree, traced.out_tree)
