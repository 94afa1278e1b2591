"""The command line's spelling of stop conditions, e.g. ``"no_improvement:val_loss:5"``:
the accepted forms (:data:`SPEC_HELP`) and :func:`parse`, which builds the same cached
condition the factory of :mod:`fungrad.stopping` gives for those arguments.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from fungrad._stop_conditions import (
    StopCondition,
    grad_norm_below,
    max_epochs,
    no_improvement,
    plateau,
    target,
)

__all__ = ["SPEC_HELP", "parse"]


def _spec_int(field: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{field}: expected a positive integer, got {text!r}")
    return value


def _spec_float(field: str, text: str, *, minimum: float | None = None) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{field}: expected a finite number, got {text!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{field}: expected a number >= {minimum:g}, got {text!r}")
    return value


# The accepted forms, each with its builder; a form's fields after "[" are optional.
_FORMS: dict[str, Callable[..., StopCondition]] = {
    "max_epochs:N": lambda n: max_epochs(_spec_int("N", n)),
    "target:METRIC:VALUE[:min|max]": lambda metric, value, mode=None: target(
        metric, _spec_float("VALUE", value), mode
    ),
    "plateau:METRIC:TOL:PATIENCE": lambda metric, tol, patience: plateau(
        metric, _spec_float("TOL", tol, minimum=0), _spec_int("PATIENCE", patience)
    ),
    "grad_norm_below:TOL": lambda tol: grad_norm_below(_spec_float("TOL", tol, minimum=0)),
    "no_improvement:METRIC:PATIENCE[:MIN_DELTA]": lambda metric, patience, delta="0": (
        no_improvement(
            metric, _spec_int("PATIENCE", patience), _spec_float("MIN_DELTA", delta, minimum=0)
        )
    ),
}

SPEC_HELP: str = ", ".join(_FORMS)
"""The accepted stop-condition specs, for help texts and error messages."""


def parse(spec: str) -> StopCondition:
    """The stop condition a command-line spec names, e.g. ``"target:val_accuracy:0.97"``.

    The forms (:data:`SPEC_HELP`): ``max_epochs:N``, ``target:METRIC:VALUE[:min|max]``
    (direction inferred from the metric's name unless given), ``plateau:METRIC:TOL:PATIENCE``,
    ``grad_norm_below:TOL``, ``no_improvement:METRIC:PATIENCE[:MIN_DELTA]``.

    Args:
        spec: the spec, fields separated by ``:``.

    Returns:
        The same cached condition the factory gives for those arguments.

    Raises:
        ValueError: one line quoting ``spec``: for an unknown kind or a wrong number of
            fields it lists the accepted forms; for a bad field it says which and why.

    Example:
        >>> parse("no_improvement:val_loss:5").name
        'no_improvement(val_loss: no decrease > 0 for 5 epochs)'
    """
    if not isinstance(spec, str):
        raise ValueError(f"spec: expected a string such as 'max_epochs:100', got {spec!r}")
    kind, *fields = spec.split(":")
    forms = {form.split(":")[0]: form for form in _FORMS}
    if kind not in forms:
        raise ValueError(
            f"spec {spec!r}: unknown stop condition {kind!r}; expected one of: {SPEC_HELP}"
        )
    form = forms[kind]
    if not form.split("[")[0].count(":") <= len(fields) <= form.count(":"):
        raise ValueError(
            f"spec {spec!r}: {kind} takes {form}, got {len(fields)} field(s); "
            f"expected one of: {SPEC_HELP}"
        )
    try:
        return _FORMS[form](*fields)
    except ValueError as error:
        raise ValueError(f"spec {spec!r}: {error}") from None
