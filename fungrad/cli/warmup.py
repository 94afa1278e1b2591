"""Compiling the programs a run needs after training while it trains.

After the last epoch, ``fungrad train`` evaluates the saved run on the training and test
parts (:func:`fungrad.cli.results.finish`). Each part has its own row count, so each is its
own XLA program, and compiling them would otherwise sit between the last epoch and the
summary. :func:`warm_evaluation_in_background` compiles them in a daemon thread as training
starts: XLA releases the GIL while it compiles, so on a machine with a second core this runs
beside the epoch's own compilation. It evaluates zero parameters of the model's shapes on
the prepared parts, through the same call (:func:`fungrad.evaluate`, and for a regression the
same chunked forward pass), so the later evaluation of the trained run finds each program in
JAX's in-memory cache. ``fungrad train`` waits for the thread when training ends, however it
ends, so no compilation outlives the run. Warming is best effort: any failure is ignored
here, and the real evaluation reports it.
"""

from __future__ import annotations

import threading
from typing import Any


def _evaluate_zeros(template: Any, options: dict, parts, regression: bool, scaled: bool) -> None:
    import jax
    import numpy as np

    from fungrad import runs
    from fungrad.train import evaluate

    params = jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), template)
    for x, y in ((parts.x_train, parts.y_train), (parts.x_test, parts.y_test)):
        if len(x) == 0:
            continue
        x = np.asarray(x)
        if not regression:
            y = np.asarray(y, np.int64)  # as the run maps its labels to class indices
        elif scaled:
            y = np.asarray(y, np.float32).reshape(len(y), -1)  # as the run scales its targets
        evaluate(params, x, y, **options)
        if regression:  # the run's errors in the targets' own units
            model = options.get("model") or runs.mlp_model(
                options["activation"], options["output_activation"]
            )
            runs.outputs_in_chunks(params, x, model, "outputs")


def warm_evaluation_in_background(init, key, config: dict, prepared) -> threading.Thread:
    """Start compiling the after-training evaluation of the run ``init(key)`` starts.

    Args:
        init: the run's ``init(key) -> params`` (only its shapes are used, by
            ``jax.eval_shape``: nothing is drawn).
        key: the key ``init`` is called with.
        config: the run's settings (``loss``, ``model``, ``activation``,
            ``output_activation``).
        prepared: the run's :class:`fungrad.cli.prepare.Prepared` data.

    Returns:
        The started daemon thread.
    """

    def work() -> None:
        import jax

        try:
            template = jax.eval_shape(init, key)
            if config.get("model", "mlp") == "cnn":
                from fungrad import cnn

                options = dict(model=cnn.apply)
            else:
                options = dict(
                    activation=config["activation"],
                    output_activation=config["output_activation"],
                )
            regression = prepared.preprocessing["task"] == "regression"
            scaled = prepared.preprocessing["target"] is not None
            _evaluate_zeros(template, dict(loss=config["loss"], **options), prepared.parts,
                            regression, scaled)  # fmt: skip
        except Exception:  # noqa: BLE001  (best effort: the real evaluation reports errors)
            pass

    thread = threading.Thread(target=work, name="fungrad-evaluation-warm-up", daemon=True)
    thread.start()
    return thread
