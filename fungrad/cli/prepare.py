"""The data and model of a run: load, split, fit the preprocessing, size the network.

Everything fitted here is fitted on the training part only, and recorded in the run's
``preprocessing`` settings (feature names, standardisation, task, class names, target
scaling) so that a saved run applies the same steps to new raw rows.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from fungrad.cli import UsageError


class Prepared(NamedTuple):
    """A run's data: ``raw`` as loaded and split, ``parts`` preprocessed for training."""

    raw: Any  # fungrad.data.Split of the rows as loaded
    parts: Any  # the same split, standardised and cast to the run's dtype
    loss: str
    sizes: list[int]
    preprocessing: dict[str, Any]
    notes: tuple[str, ...]  # one line per decision the loader made


def label_column(config) -> int | str:
    """``--label-column`` as the loader takes it: an index when it is a number."""
    column = config["label_column"]
    if isinstance(column, str) and column.lstrip("-").isdigit():
        return int(column)
    return column


def _loss(config, dataset) -> str:
    """``--loss auto``: softmax cross-entropy for class labels, l2 for real targets."""
    if config["loss"] != "auto":
        return config["loss"]
    return "softmax_cross_entropy" if dataset.n_classes is not None else "l2"


def _output_width(loss: str, dataset) -> int:
    """The last layer's width: one unit per class, one for a binary sigmoid, else the targets'."""
    if dataset.n_classes is not None and loss == "softmax_cross_entropy":
        return dataset.n_classes
    if dataset.n_classes == 2 and loss == "sigmoid_binary_cross_entropy":
        return 1
    if dataset.n_classes is not None:
        raise UsageError(
            f"--loss: {loss} needs real-valued targets or two classes, but the data have "
            f"{dataset.n_classes} classes; use softmax_cross_entropy"
        )
    return 1 if dataset.y.ndim == 1 else dataset.y.shape[1]


def _scaling(standardizer) -> dict[str, list[float]] | None:
    if standardizer is None:
        return None
    return {"mean": standardizer.mean.tolist(), "std": standardizer.std.tolist()}


def _target_scaling(config, dataset, raw):
    """The regression targets' standardiser, fitted on the training part (or ``None``).

    Targets of a regression are standardised by default (``--no-standardize-targets``
    turns it off): ``y -> (y - mean) / std``, so that the default learning rate suits
    prices and counts as well as it suits unit-scale data. Predictions and reported errors
    are turned back into the target's own units.
    """
    from fungrad import data

    if dataset.n_classes is not None or not config.get("standardize_targets", False):
        return None
    return data.fit_standardizer(raw.y_train.reshape(raw.y_train.shape[0], -1))


def _scaled(standardizer, y):
    if standardizer is None:
        return y
    return standardizer(y.reshape(y.shape[0], -1)).reshape(y.shape).astype(y.dtype)


def _preprocessing(dataset, standardize, target) -> dict[str, Any]:
    return {
        "table": None if dataset.table is None else dataset.table.to_dict(),
        "features": dataset.features,
        "n_features": int(dataset.x.shape[1]),
        "standardize": _scaling(standardize),
        "task": "classification" if dataset.n_classes is not None else "regression",
        "classes": dataset.classes,
        "target": _scaling(target),
    }


def prepare(config) -> Prepared:
    """Load, split, standardise (on the training part's statistics) and cast the data."""
    import jax.numpy as jnp

    from fungrad import data

    dataset = data.load(
        config["data"],
        label_column=label_column(config),
        labels=config["labels"],
        max_bytes=config.get("max_bytes") or data.MAX_BYTES,
        **data.table_options(config),
    )
    raw = data.split(
        dataset.x, dataset.y, seed=config["seed"], validation=config["validation"],
        test=config["test"],
    )  # fmt: skip
    raw, dataset = data.training_levels(raw, dataset)
    standardize = data.fit_standardizer(raw.x_train) if config["standardize"] else None
    # The inputs take the parameters' dtype (bfloat16 and float16 too: the forward pass runs
    # in it); targets keep theirs, and the loss is taken in float32 or wider.
    dtype = jnp.dtype(config["dtype"])
    parts = raw
    for name in ("x_train", "x_val", "x_test"):
        x = getattr(raw, name)
        parts = parts._replace(
            **{name: (x if standardize is None else standardize(x)).astype(dtype)}
        )
    target = _target_scaling(config, dataset, raw)
    for name in ("y_train", "y_val", "y_test"):
        parts = parts._replace(**{name: _scaled(target, getattr(raw, name))})
    loss = _loss(config, dataset)
    width = _output_width(loss, dataset)
    if config.get("model", "mlp") == "cnn":
        _check_images(config, dataset)
        sizes = [dataset.x.shape[1], *CNN_CHANNELS, width]
    else:
        sizes = [dataset.x.shape[1], *config["hidden"], width]
    preprocessing = _preprocessing(dataset, standardize, target)
    return Prepared(raw, parts, loss, sizes, preprocessing, dataset.notes)


CNN_CHANNELS = (16, 32)
"""The filters of ``--model cnn``'s two convolutions (see :mod:`fungrad.cnn`)."""


def _check_images(config, dataset) -> None:
    """``--model cnn`` needs square images: their side, or a usage error."""
    from fungrad import cnn

    try:
        cnn.image_side(dataset.x.shape[1])
    except ValueError as error:
        raise UsageError(f"{error} (the bundled digits and IDX images are)") from None


def parameter_count(config) -> int:
    """The number of weights and biases of the run's model (``config["sizes"]``)."""
    sizes = config["sizes"]
    if config.get("model", "mlp") == "cnn":
        import math

        n_features, c1, c2, outputs = sizes
        side = math.ceil(math.ceil(math.isqrt(n_features) / 2) / 2)
        return 9 * c1 + c1 + 9 * c1 * c2 + c2 + (side * side * c2 + 1) * outputs
    return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def model_name(config) -> str:
    """``"MLP 64-64-10"``, or ``"CNN 8x8, conv16-conv32-10"``."""
    sizes = config["sizes"]
    if config.get("model", "mlp") == "cnn":
        import math

        side = math.isqrt(sizes[0])
        return f"CNN {side}x{side}, conv{sizes[1]}-conv{sizes[2]}-{sizes[3]}"
    return "MLP " + "-".join(str(size) for size in sizes)
