"""Stop conditions as pure, traceable predicates on the history the training loop carries.

The loop keeps ``history``: a dict of arrays of length ``epochs`` (the cap), where entry
``e`` holds the metric after epoch ``e`` (NaN for epochs not yet run). A stop condition is a
predicate ``(history, epoch) -> bool`` evaluated after epoch ``epoch``; it runs the same in
Python and inside ``lax.while_loop``, which is what lets vmapped restarts stop one by one.

A metric's direction follows its name unless given (:func:`direction`): accuracies are
better higher (``"max"``), everything else (losses, gradient norms) lower (``"min"``). So
``target("val_accuracy", 0.97)`` waits for ``>= 0.97`` and ``target("loss", 1e-3)`` for
``<= 1e-3``; before, :func:`target` always meant ``<=`` unless told ``mode="max"``.

The factories are cached: the same arguments give the same condition object, so a training
program compiled with it is reused by the next ``fit`` with the same settings.
:func:`parse` reads the command line's spelling, e.g. ``"no_improvement:val_loss:5"``.
"""

from fungrad._stop_conditions import (
    StopCondition,
    direction,
    grad_norm_below,
    max_epochs,
    no_improvement,
    plateau,
    target,
)
from fungrad._stop_specs import SPEC_HELP, parse

__all__ = [
    "SPEC_HELP",
    "StopCondition",
    "direction",
    "grad_norm_below",
    "max_epochs",
    "no_improvement",
    "parse",
    "plateau",
    "target",
]
