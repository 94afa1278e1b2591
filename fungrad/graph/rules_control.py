"""VJP rules for calls and control flow: the engine applied to the jaxprs inside equations.

A call (``jit``, ``closed_call``, a ``custom_vjp`` function) is a sub-graph: its rule runs
the engine on the inner jaxpr (forward, then the backward walk) with the call's output
cotangents, ``xbar = J_body^T ybar``.

A ``custom_jvp`` function (``jax.nn.relu``, ``logsumexp``, ``logaddexp`` inside
``softplus``) carries its author's derivative as a JVP rule ``(x, t) -> (f(x), J(x) t)``, a
JAX function linear in the tangent ``t``. The engine differentiates that function with
respect to ``t``: the VJP of ``t -> J t`` is ``c -> J^T c``. So the author's derivative is
used (``relu'(0) = 0``, ``softplus'(0) = 1/2``, where differentiating the primal body would
give ``1/2`` and ``0`` at those kinks) without JAX's own differentiation: the rule is only
evaluated, and fungrad's rules do the reverse pass. Closed-over constants of the function
get no cotangent, as in JAX. A ``custom_vjp`` function's primal body is differentiated
with fungrad's rules (register a rule for a primitive inside with ``defvjp`` to change it).
"""

from __future__ import annotations

import jax
import numpy as np
from jax import lax
from jax.extend.core import ClosedJaxpr, jaxpr_as_fun, primitives

from fungrad.graph import interpreter
from fungrad.graph.registry import defvjp, refuse


def _call(jaxpr_param: str):
    """The rule of a call primitive whose inner ClosedJaxpr is ``params[jaxpr_param]``."""

    def rule(g, ans, *args, **params):
        return tuple(interpreter.vjp_jaxpr(params[jaxpr_param], args, g, instantiate=False))

    return rule


def _exactly(x, aval):
    """``x`` with ``aval``'s dtype and no weak type, so loop and branch types line up."""
    return lax.convert_element_type(x, aval.dtype)


def _float_only(cts, args):
    """``None`` for the cotangents of non-float arguments."""
    return tuple(
        ct if interpreter.is_float(jax.typeof(a)) else None for ct, a in zip(cts, args, strict=True)
    )


def _scan(g, ans, *args, reverse, length, jaxpr, num_consts, num_carry, unroll=1, **params):
    """``scan``: run forward keeping each step's carry, then a reverse scan of the body's VJP.

    With ``(c_{k+1}, y_k) = body(consts, c_k, x_k)``, the backward pass walks ``k`` from
    last to first carrying ``cbar_{k+1}``: the body's VJP at ``(consts, c_k, x_k)`` with
    ``(cbar_{k+1}, ybar_k)`` gives ``(constsbar_k, cbar_k, xbar_k)``. The constants are used
    at every step, so their cotangent is the sum over steps. Only the carries are kept
    (length x carry values); each step's intermediates are recomputed from them.
    """
    consts, init, xs = (
        args[:num_consts],
        args[num_consts : num_consts + num_carry],
        args[num_consts + num_carry :],
    )
    body = jaxpr_as_fun(jaxpr)
    avals = [v.aval for v in jaxpr.jaxpr.invars]
    carry_avals = avals[num_consts : num_consts + num_carry]

    def keep_carry(carry, x):
        out = body(*consts, *carry, *x)
        return [_exactly(c, a) for c, a in zip(out[:num_carry], carry_avals, strict=True)], carry

    carry0 = [_exactly(c, a) for c, a in zip(init, carry_avals, strict=True)]
    _, carries = lax.scan(
        keep_carry, carry0, list(xs), length=length, reverse=reverse, unroll=unroll
    )

    def step(state, residual):
        consts_ct, carry_ct = state
        carry, x, y_ct = residual
        cts = interpreter.vjp_jaxpr(jaxpr, [*consts, *carry, *x], [*carry_ct, *y_ct])
        cts = [_exactly(ct, a) for ct, a in zip(cts, avals, strict=True)]
        consts_ct = [a + b for a, b in zip(consts_ct, cts[:num_consts], strict=True)]
        return (consts_ct, cts[num_consts : num_consts + num_carry]), cts[num_consts + num_carry :]

    state = (
        [interpreter.zeros(a) for a in avals[:num_consts]],
        [_exactly(c, a) for c, a in zip(g[:num_carry], carry_avals, strict=True)],
    )
    (consts_ct, init_ct), xs_ct = lax.scan(
        step,
        state,
        (carries, list(xs), list(g[num_carry:])),
        length=length,
        reverse=not reverse,
        unroll=unroll,
    )
    return _float_only([*consts_ct, *init_ct, *xs_ct], args)


def _zero_tangent(aval):
    """A zero tangent; integer inputs have ``float0`` tangents, which only NumPy can hold."""
    if interpreter.is_float(aval):
        return interpreter.zeros(aval)
    return np.zeros(aval.shape, aval.dtype)


def _custom_jvp_call(g, ans, *args, call_jaxpr, num_consts, **params):
    """Pull ``g`` back through the function's own JVP rule: the VJP of ``t -> J(x) t``."""
    if "jvp_jaxpr_fun" not in params:  # no JVP rule to use: differentiate the primal body
        return tuple(interpreter.vjp_jaxpr(call_jaxpr, args, g, instantiate=False))
    primals = args[num_consts:]
    jvp_jaxpr, jvp_consts, out_zeros = params["jvp_jaxpr_fun"].call_wrapped(*[False] * len(primals))
    tangent_vars = jvp_jaxpr.invars[len(primals) :]
    tangents = [_zero_tangent(v.aval) for v in tangent_vars]
    active = [False] * len(primals) + [interpreter.is_float(v.aval) for v in tangent_vars]
    trace = interpreter.forward(jvp_jaxpr, jvp_consts, [*primals, *tangents], active)
    tangent_cts = [ct for ct, zero in zip(g, out_zeros, strict=True) if not zero]
    in_cts, _ = interpreter.backward(jvp_jaxpr, trace, [None] * len(out_zeros) + tangent_cts)
    return (None,) * num_consts + tuple(in_cts[len(primals) :])


def _remat(g, ans, *args, jaxpr, **params):
    """``jax.checkpoint``: its body (an open jaxpr) is recomputed in the backward pass anyway."""
    return tuple(interpreter.vjp_jaxpr(ClosedJaxpr(jaxpr, ()), args, g, instantiate=False))


def _cond(g, ans, index, *operands, branches, **params):
    """``cond``: the backward pass is itself a ``switch`` on the same index.

    Only the branch taken ran forward, so only its VJP runs backward; every branch's VJP
    returns zeros for the operands it does not use, so all branches return the same types.
    """

    def branch_vjp(closed):
        def pull_back(operands, g):
            cts = interpreter.vjp_jaxpr(closed, operands, g)
            return [_exactly(ct, v.aval) for ct, v in zip(cts, closed.jaxpr.invars, strict=True)]

        return pull_back

    cts = lax.switch(index, [branch_vjp(b) for b in branches], list(operands), list(g))
    return (None, *_float_only(cts, operands))


defvjp(primitives.jit_p, _call("jaxpr"))
defvjp(primitives.closed_call_p, _call("call_jaxpr"))
defvjp(primitives.custom_jvp_call_p, _custom_jvp_call)
defvjp(primitives.custom_vjp_call_p, _call("call_jaxpr"))
defvjp(primitives.remat_p, _remat)
defvjp(primitives.cond_p, _cond)
defvjp(primitives.scan_p, _scan)

refuse(
    primitives.while_p,
    "Reverse-mode differentiation does not work for lax.while_loop or lax.fori_loop with "
    "dynamic start/stop values: the number of iterations, hence what to keep for the "
    "backward pass, is unknown. Use lax.scan, or lax.fori_loop with static (Python int) "
    "start/stop values, which becomes a scan",
)
