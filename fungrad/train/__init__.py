"""The optimization loop, compiled: ``fit`` for one run, ``fit_restarts`` for many at once.

Training minimises ``L(w) = 1/N sum_i l(F(x_i; w), y_i)`` for any pure model ``F``. Each
epoch is one jitted call (:mod:`fungrad.train.epoch`): the data are shuffled on the device, cut
into minibatches, and a ``lax.scan`` runs the steps ``w <- update(w, grad L_batch(w))``. After
the epoch the loop records the metrics in a fixed-size history, keeps the best epoch's
parameters if asked, and asks the stop conditions whether to go on. With ``checkpoint=`` the whole run is saved as it
goes (:mod:`fungrad.train.saving`) and resumes bit for bit.

The modules, bottom to top: ``state`` (the pytrees), ``model_checks`` (each kind of model's
checks of its data and params), ``sources`` (gradient sources as values: an MLP, any
``model(params, x) -> y_hat``, or a user's callable), ``program`` (checked static settings),
``epoch`` (the compiled epoch), ``saving`` (checkpoints of the carry), ``fit``, ``restarts``,
``evaluate``. Nothing above ``sources`` knows what kind of model it trains.
"""

from fungrad.train.evaluate import evaluate
from fungrad.train.fit import fit
from fungrad.train.restarts import fit_restarts
from fungrad.train.state import FitResult, RestartsResult, StopTraining, TrainState

__all__ = [
    "TrainState",
    "FitResult",
    "RestartsResult",
    "StopTraining",
    "fit",
    "fit_restarts",
    "evaluate",
]
