"""VJP rules for calls and control flow: the engine applied to the jaxprs inside equations.

A call (``jit``, ``closed_call``, a ``custom_jvp``/``custom_vjp`` function) is a sub-graph:
its rule runs the engine on the inner jaxpr (forward, then the backward walk) with the
call's output cotangents. A custom derivative's *primal body* is differentiated with
fungrad's own rules, so a user's custom JVP/VJP is not consulted (register a rule for the
primitive inside with ``defvjp`` to change how it is differentiated).
"""

from __future__ import annotations

from jax.extend.core import primitives

from fungrad.graph import interpreter
from fungrad.graph.registry import defvjp, refuse


def _call(jaxpr_param: str, num_leading: int = 0):
    """The rule of a call primitive whose inner ClosedJaxpr is ``params[jaxpr_param]``."""

    def rule(g, ans, *args, **params):
        return tuple(interpreter.vjp_jaxpr(params[jaxpr_param], args, g, instantiate=False))

    return rule


defvjp(primitives.jit_p, _call("jaxpr"))
defvjp(primitives.closed_call_p, _call("call_jaxpr"))
defvjp(primitives.custom_jvp_call_p, _call("call_jaxpr"))
defvjp(primitives.custom_vjp_call_p, _call("call_jaxpr"))

refuse(
    primitives.while_p,
    "Reverse-mode differentiation does not work for lax.while_loop or lax.fori_loop with "
    "dynamic start/stop values: the number of iterations, hence what to keep for the "
    "backward pass, is unknown. Use lax.scan, or lax.fori_loop with static (Python int) "
    "start/stop values, which becomes a scan",
)
