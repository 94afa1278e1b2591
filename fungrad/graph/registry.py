"""The rule table of the general engine: one hand-written VJP rule per JAX primitive.

A primitive ``y = p(x_1, ..., x_n)`` has Jacobians ``dy/dx_i``. Its VJP rule maps the
cotangent of the output, ``g = dL/dy``, to the cotangents of the inputs,
``dL/dx_i = (dy/dx_i)^T g``: the chain rule applied at one node of the graph. The
interpreter calls the rules in reverse order and adds the results where a value branches.

A rule is a small pure function of JAX arrays, registered in one line next to it::

    defvjp(lax.exp_p, lambda g, ans, x, **params: (g * ans,))
    defvjp(lax.mul_p, lambda g, ans, x, y, **params: (g * y, g * x))

It is called as ``rule(g, ans, *args, **params)``:

- ``g``: the output's cotangent (for a primitive with several outputs a list, one per
  output; an output nobody used gets zeros);
- ``ans``: the output's value (a list for several outputs);
- ``args``: the input values; ``params``: the equation's parameters.

It returns one entry per input: that input's cotangent, with the input's shape and dtype,
or ``None`` for zero or not differentiable (integer inputs, indices, comparisons).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Rule = Callable[..., Any]

_RULES: dict[Any, Rule] = {}
_REFUSALS: dict[Any, str] = {}

_HOW_TO_REGISTER = (
    "Register a rule with fungrad.graph.defvjp(primitive, rule), where "
    "rule(g, ans, *args, **params) returns one cotangent per input (None where there is "
    "none), e.g. fungrad.graph.defvjp(jax.lax.exp_p, lambda g, ans, x, **params: (g * ans,))."
)


class UnsupportedPrimitiveError(NotImplementedError):
    """A primitive on the differentiated path has no VJP rule in ``fungrad.graph``."""


def defvjp(primitive: Any, rule: Rule) -> Rule:
    """Register ``rule`` as the VJP of ``primitive`` (replacing any rule it had).

    Args:
        primitive: a JAX primitive, e.g. ``jax.lax.sin_p``.
        rule: ``rule(g, ans, *args, **params) -> tuple`` with one cotangent (or ``None``)
            per input of the primitive; see the module docstring.

    Returns:
        ``rule``, so ``defvjp`` can be used as a decorator factory's last step.

    Raises:
        TypeError: if ``primitive`` is not a JAX primitive or ``rule`` is not callable.

    Example:
        >>> from jax.extend.core import Primitive
        >>> from fungrad.graph import registry
        >>> double = Primitive("double")  # y = 2 x, so xbar = 2 ybar
        >>> rule = registry.defvjp(double, lambda g, ans, x, **params: (2 * g,))
        >>> registry.rule_for(double) is rule
        True
    """
    if not (hasattr(primitive, "name") and hasattr(primitive, "bind")):
        raise TypeError(
            f"defvjp: primitive must be a JAX primitive such as jax.lax.sin_p, got {primitive!r}"
        )
    if not callable(rule):
        raise TypeError(
            f"defvjp: rule must be a callable rule(g, ans, *args, **params), got {rule!r}"
        )
    _REFUSALS.pop(primitive, None)
    _RULES[primitive] = rule
    return rule


def refuse(primitive: Any, reason: str) -> None:
    """Mark ``primitive`` as not reverse-differentiable, with the ``reason`` to report."""
    _RULES.pop(primitive, None)
    _REFUSALS[primitive] = reason


def has_rule(primitive: Any) -> bool:
    """Whether ``primitive`` has a registered VJP rule."""
    return primitive in _RULES


def rule_for(primitive: Any, source_info: Any = None) -> Rule:
    """The VJP rule of ``primitive``.

    Args:
        primitive: a JAX primitive.
        source_info: the equation's ``source_info``, used to name the user's source line.

    Returns:
        The registered rule.

    Raises:
        UnsupportedPrimitiveError: if there is no rule, naming the primitive, the source
            line it came from and how to register one.
    """
    rule = _RULES.get(primitive)
    if rule is not None:
        return rule
    where = _source_line(source_info)
    name = getattr(primitive, "name", repr(primitive))
    if primitive in _REFUSALS:
        raise UnsupportedPrimitiveError(f"{_REFUSALS[primitive]} (primitive '{name}'{where})")
    raise UnsupportedPrimitiveError(
        f"fungrad.graph cannot differentiate the primitive '{name}'{where}: it has no VJP "
        f"rule. {_HOW_TO_REGISTER}"
    )


def _source_line(source_info: Any) -> str:
    """``", from file.py:12:4 (fn)"`` for an equation's source info, or ``""``."""
    if source_info is None:
        return ""
    try:
        from jax._src import source_info_util

        line = source_info_util.summarize(source_info)
        return f", from {line}" if line else ""
    except Exception:  # the summary is a courtesy; never hide the real error behind it
        return ""
