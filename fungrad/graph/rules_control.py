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

import numpy as np
from jax.extend.core import primitives

from fungrad.graph import interpreter
from fungrad.graph.registry import defvjp, refuse


def _call(jaxpr_param: str):
    """The rule of a call primitive whose inner ClosedJaxpr is ``params[jaxpr_param]``."""

    def rule(g, ans, *args, **params):
        return tuple(interpreter.vjp_jaxpr(params[jaxpr_param], args, g, instantiate=False))

    return rule


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


defvjp(primitives.jit_p, _call("jaxpr"))
defvjp(primitives.closed_call_p, _call("call_jaxpr"))
defvjp(primitives.custom_jvp_call_p, _custom_jvp_call)
defvjp(primitives.custom_vjp_call_p, _call("call_jaxpr"))

refuse(
    primitives.while_p,
    "Reverse-mode differentiation does not work for lax.while_loop or lax.fori_loop with "
    "dynamic start/stop values: the number of iterations, hence what to keep for the "
    "backward pass, is unknown. Use lax.scan, or lax.fori_loop with static (Python int) "
    "start/stop values, which becomes a scan",
)
