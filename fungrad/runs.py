"""A saved run folder: :func:`load_run` reads it back, and the :class:`Run` predicts on raw rows.

A run folder written by ``fungrad train`` holds ``checkpoint.npz``, which records everything
prediction needs: the parameters (the best epoch's when the run kept them, of the best run
for restarts), the model (layer sizes, activations, loss) and every preprocessing step fitted
at load time (feature columns, standardisation, class labels, target scaling). A checkpoint
written by ``fit(..., checkpoint=PATH)`` loads too, with no preprocessing and classes
``0..C-1``.

Prediction runs jit-compiled in chunks of :data:`CHUNK` rows (fewer rows are padded to the
next power of two), so a million rows need no giant allocation and new row counts reuse the
few compiled shapes.

Example:
    >>> import jax, numpy as np, os, tempfile
    >>> from fungrad import data, fit, mlp, optim
    >>> digits = data.load("digits")
    >>> path = os.path.join(tempfile.mkdtemp(), "digits.npz")
    >>> _ = fit(mlp.init(jax.random.key(0), [64, 10]), digits.x / 16, digits.y,
    ...         loss="softmax_cross_entropy", optimizer=optim.sgd(0.1), epochs=2,
    ...         key=jax.random.key(1), checkpoint=path)
    >>> run = load_run(path)
    >>> run.predict(digits.x[:3] / 16).shape, run.predict_scores(digits.x[0] / 16).shape
    ((3,), (10,))
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from fungrad import _saved_run, data, mlp
from fungrad._saved_run import (
    class_indices,
    class_labels,
    feature_names,
    label_column_of,
    output_head,
    params_dtype,
    saved_test_part,
    scaling,
)
from fungrad.losses import get_loss
from fungrad.train import evaluate as evaluate_mlp

__all__ = ["CHUNK", "Run", "load_run", "params_dtype"]

CHUNK = 8192
"""Rows per compiled prediction call; longer inputs run in chunks of this size."""


@functools.cache
def mlp_model(activation: str, output_activation: str):
    """The MLP's ``model(params, x)``: one function object per pair, so compiles are reused."""

    def model(params, x):
        return mlp.apply(params, x, activation=activation, output_activation=output_activation)

    return model


@functools.partial(jax.jit, static_argnames=("model", "head"))
def _forward(params, x, *, model, head: str):
    outputs = model(params, x)
    if head == "softmax":
        return jax.nn.softmax(outputs, axis=-1)
    if head == "sigmoid":
        return jax.nn.sigmoid(outputs)
    if head == "sigmoid_pair":
        p = jax.nn.sigmoid(outputs)
        return jnp.concatenate([1 - p, p], axis=-1)
    return outputs


def outputs_in_chunks(params, x: np.ndarray, model, head: str) -> np.ndarray:
    """``model(params, x)`` (after ``head``) for ``n >= 1`` rows, in compiled chunks.

    Chunks hold :data:`CHUNK` rows; fewer rows are padded with zeros to the next power of
    two, so row counts share a few programs.
    """
    n = x.shape[0]
    size = CHUNK if n >= CHUNK else 1 << max(n - 1, 0).bit_length()
    chunks = []
    for start in range(0, n, size):
        part = x[start : start + size]
        rows = part.shape[0]
        if rows < size:
            part = np.concatenate([part, np.zeros((size - rows, x.shape[1]), x.dtype)])
        chunks.append(np.asarray(_forward(params, part, model=model, head=head))[:rows])
    return np.concatenate(chunks)


class Run:
    """A trained model read back from a run folder or a checkpoint, ready to predict.

    Attributes:
        path: the checkpoint file it was read from.
        config: the run's saved config.
        history: metric name -> per-epoch NumPy array, of the run that predicts.
        params: the parameters prediction uses: the best epoch's if the run kept them (of the
            best run, for restarts), else the last.
        last_params: the parameters after the last epoch (of the same run).
        best_epoch: the 1-based epoch of ``params``, or ``None`` when they are the last.
        classes: the class labels in the order of the model's outputs, or ``None``.
        features: the training file's feature column names, or ``None``.
        task: ``"classification"`` or ``"regression"``.
        n_features: the number of features a row holds.
        label_column: the training file's label column (a name or an index).
    """

    def __init__(self, path: Path, config: dict, history: dict, params, last_params,
                 best_epoch: int | None, model=None) -> None:  # fmt: skip
        fit, preprocessing = config["fit"], config.get("preprocessing") or {}
        self.path, self.config, self.history = path, config, history
        self.params, self.last_params, self.best_epoch = params, last_params, best_epoch
        self._loss = get_loss(fit["loss"])
        self._dtype = np.dtype(jax.tree_util.tree_leaves(params)[0].dtype)
        if model is None:  # an MLP
            self._model = mlp_model(fit["activation"], fit["output_activation"])
            self._options = dict(activation=fit["activation"],
                                 output_activation=fit["output_activation"])  # fmt: skip
            self.n_features, n_outputs = mlp.layer_sizes(params)[0], mlp.layer_sizes(params)[-1]
        else:
            self._model, self._options = model, dict(model=model)
            self.n_features = int(preprocessing["n_features"])
            row = jax.ShapeDtypeStruct((1, self.n_features), self._dtype)
            n_outputs = int(jax.eval_shape(model, params, row).shape[-1])
        self._n_outputs = n_outputs
        self.task = preprocessing.get("task") or (
            "classification" if self._loss.classification else "regression"
        )
        self._head = output_head(self._loss.name, n_outputs, self.task)
        self.classes = class_labels(preprocessing.get("classes"), self._head, n_outputs, path)
        self.features = feature_names(preprocessing.get("features"), self.n_features, path)
        self.label_column = label_column_of(config)
        self._table = preprocessing.get("table")
        self._from_command_line = config.get("format") == "fungrad-run"
        self._standardize = scaling(preprocessing.get("standardize"), self.n_features, path)
        self._target = scaling(preprocessing.get("target"), n_outputs, path)

    def __repr__(self) -> str:
        if "model" in self._options:
            model = self.config["fit"].get("function", "model")
        else:
            model = "mlp " + "-".join(map(str, mlp.layer_sizes(self.params)))
        best = "last epoch" if self.best_epoch is None else f"best epoch {self.best_epoch}"
        return f"Run({str(self.path)!r}, {model}, {self.task}, {best})"

    # ----------------------------------------------------------------------- rows

    def preprocess(self, x: ArrayLike) -> np.ndarray:
        """Raw rows as the model takes them: the saved standardisation, in the run's dtype.

        Rows are read as float32 first for a run of ``fungrad train`` (its loader's dtype),
        then standardised ``(x - mean) / std`` with the saved float32 statistics and cast to
        the run's dtype, exactly as training did.

        Args:
            x: one row ``(d,)`` or rows ``(n, d)`` of raw feature values, in the training
                file's column order.

        Returns:
            A NumPy array of the same shape in the run's dtype.

        Raises:
            ValueError: for a width other than the training data's, or NaN or infinity.
            TypeError: for non-numeric values.
        """
        x = np.asarray(x)
        if x.dtype.kind not in "biuf" and not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"x: expected numeric feature values, got dtype {x.dtype}")
        if x.dtype.kind not in "biuf":
            x = x.astype(np.float32)  # bfloat16 or float16 from ml_dtypes: NumPy maths in float32
        if x.ndim not in (1, 2) or x.shape[-1] != self.n_features:
            got = x.shape[-1] if x.ndim in (1, 2) else f"shape {x.shape}"
            raise ValueError(
                f"x: expected {self.n_features} features (the training data's), got {got}"
            )
        bad = np.flatnonzero(~np.isfinite(x).reshape(-1, self.n_features).all(axis=1))
        if bad.size:
            raise ValueError(f"x: row {bad[0]} contains NaN or infinity")
        if self._from_command_line:
            x = x.astype(np.float32)
        if self._standardize is not None:
            x = data.Standardizer(*self._standardize)(x)
        return x.astype(self._dtype)

    def read_rows(self, source: str | os.PathLike, *, labels: str | os.PathLike | None = None):
        """Rows (and labels, if present) of a file, read with the run's loader options.

        See :func:`fungrad.data.load_rows`; returns ``(x, y or None)``.
        """
        return data.load_rows(
            source, label_column=self.label_column, labels=labels, features=self.features,
            n_features=self.n_features, table=self._table,
        )  # fmt: skip

    def test_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """The raw rows and original labels of the test part ``fungrad train`` held out.

        The run's data are loaded and split again with its saved settings (``data``,
        ``labels``, ``label_column``, ``seed``, ``validation``, ``test``).

        Raises:
            ValueError: if the run was not written by ``fungrad train`` or kept no test part.
        """
        return saved_test_part(self.config, self.label_column, self.path)

    # ----------------------------------------------------------------------- predicting

    def _rows(self, x) -> tuple[np.ndarray, bool]:
        """Preprocessed rows ``(n, d)`` and whether ``x`` was one row ``(d,)``."""
        x = self.preprocess(x)
        return x.reshape(-1, self.n_features), x.ndim == 1

    def _outputs(self, x: np.ndarray, head: str) -> np.ndarray:
        """The model's outputs ``(n, k)`` on preprocessed rows (after ``head``), in chunks."""
        if x.shape[0] == 0:
            width = self._n_outputs * (2 if head == "sigmoid_pair" else 1)
            return np.zeros((0, width), self._dtype)
        return outputs_in_chunks(self.params, x, self._model, head)

    def _original_units(self, outputs: np.ndarray) -> np.ndarray:
        if self._target is None:
            return outputs
        mean, std = self._target
        return outputs * std.astype(outputs.dtype) + mean.astype(outputs.dtype)

    def predict_scores(self, x: ArrayLike) -> np.ndarray:
        """Class probabilities ``(n, C)``, or for regression the outputs in original units.

        Probabilities are the softmax of the logits; a one-output sigmoid classifier gives
        the columns ``[1 - p, p]`` with ``p = sigmoid(z)``. One row ``(d,)`` gives ``(C,)``.
        """
        x, single = self._rows(x)
        if self._head is None:
            scores = self._original_units(self._outputs(x, "outputs"))
        else:
            scores = self._outputs(x, self._head)
        return scores[0] if single else scores

    def predict(self, x: ArrayLike) -> np.ndarray:
        """Predictions in the original label space: class labels, or real values.

        The class is ``argmax`` of the logits (``z > 0`` for a one-output sigmoid classifier),
        given as the training data's label (``"setosa"``, ``7``); for regression the outputs
        with the target scaling undone, ``(n,)`` for one output. One row ``(d,)`` gives one
        value.
        """
        x, single = self._rows(x)
        predictions = self._predictions(self._outputs(x, "outputs"))
        return predictions[0] if single else predictions

    def _predictions(self, outputs: np.ndarray) -> np.ndarray:
        if self.task == "regression":
            values = self._original_units(outputs)
            return values[:, 0] if values.shape[1] == 1 else values
        if self._head == "sigmoid":  # several independent sigmoid outputs: 0/1 each
            return (outputs > 0).astype(np.int64)
        index = outputs[:, 0] > 0 if self._head == "sigmoid_pair" else outputs.argmax(axis=1)
        return np.asarray(self.classes)[index.astype(np.int64)]

    # ----------------------------------------------------------------------- evaluating

    def evaluate(self, x: ArrayLike, y: ArrayLike) -> dict[str, float]:
        """The run's loss and accuracy (or RMSE and MAE) on raw rows and their labels.

        Class labels are given as in the data (``"setosa"``, ``7``) and mapped to the model's
        outputs through :attr:`classes`. The loss and accuracy are those of
        :func:`fungrad.evaluate` on the preprocessed rows: same math, same dtype. For
        regression the loss is on the targets as training saw them (scaled, when the run
        scaled them), and ``rmse = sqrt(mean((y_hat - y)^2))``, ``mae = mean(|y_hat - y|)``
        are in the target's original units.

        Args:
            x: raw rows ``(n, d)``.
            y: their labels ``(n,)`` or real targets ``(n,)`` / ``(n, k)``.

        Returns:
            ``{"loss", "accuracy"}`` or ``{"loss", "rmse", "mae"}``, as floats.

        Raises:
            ValueError: for a label that is not one of the run's classes (naming it), or
                rows and labels of different lengths.
        """
        x, single = self._rows(x)
        y = np.asarray(y)
        if single:  # one row (d,) and its label or its (k,) targets
            y = y[None]
        options = dict(loss=self._loss, **self._options)
        if self.task == "classification":
            targets = y if self.classes is None else class_indices(y, self.classes)
            return evaluate_mlp(self.params, x, targets, **options)
        if y.dtype.kind not in "biuf":
            raise TypeError(f"y: expected real-valued targets, got dtype {y.dtype}")
        targets = y
        if self._target is not None and y.ndim >= 1:
            targets = data.Standardizer(*self._target)(y.reshape(y.shape[0], -1))
        metrics = evaluate_mlp(self.params, x, targets, **options)
        predicted = self._original_units(self._outputs(x, "outputs")).astype(np.float64)
        error = predicted - y.astype(np.float64).reshape(predicted.shape)
        return {**metrics, "rmse": float(np.sqrt(np.mean(error**2))),
                "mae": float(np.mean(np.abs(error)))}  # fmt: skip


# --------------------------------------------------------------------------- reading a run


def load_run(path: str | os.PathLike, *, model=None) -> Run:
    """Read a run folder (its ``checkpoint.npz``) or a checkpoint file, to predict with.

    Args:
        path: a folder written by ``fungrad train``, or a checkpoint file written by it or
            by ``fit(..., checkpoint=PATH)`` / ``fit_restarts(..., checkpoint=PATH)``.

    Returns:
        A :class:`Run`.

    Raises:
        CheckpointNotFoundError: if nothing is at ``path``.
        CheckpointError: for a folder without ``checkpoint.npz``, a damaged file, a checkpoint
            without a model description (``config["fit"]``) or of a model other than an MLP.
        ValueError: for a float64 run while JAX's double precision is off.
    """
    file, saved = _saved_run.read_checkpoint(path)
    model = _saved_run.model_function(saved.config, model, file)
    with _saved_run.damage_reported(file):
        return Run(file, saved.config, *_saved_run.choose(saved), model=model)
