"""Writing a checkpoint: a training state, the run's config, history, best epoch and
progress, checked and encoded into one pickle-free archive, written atomically.

See :mod:`fungrad.checkpoint` for the file's layout and :func:`save` for its arguments.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from fungrad.checkpoint import archive as _archive
from fungrad.checkpoint.archive import FORMAT_VERSION
from fungrad.checkpoint.atomic import write_atomically
from fungrad.train import FitResult, TrainState

__all__ = ["Best", "save"]

BEST = jax.tree_util.GetAttrKey("best")
BEST_PARAMS = (BEST, jax.tree_util.GetAttrKey("params"))
"""The key paths the best epoch's members are named after (``best/params/0/w``, ...)."""


class Best(NamedTuple):
    """The best epoch so far by `metric` (for fit_restarts: each field stacked over runs)."""

    params: Any  # the parameters after that epoch (same structure as state.params)
    epoch: Any  # the 1-based epoch number (int, or (R,) int array for restarts); 0 = none yet
    value: Any  # the metric's value then (float, or (R,) array)
    metric: str  # e.g. "val_loss"
    mode: str  # "min" or "max"


def _checked_target(path, state) -> Path:
    """``path`` as a ``Path``, after checking that it names a file and ``state`` a state."""
    if isinstance(state, FitResult):
        raise TypeError("state: expected a TrainState, got a FitResult; pass result.state")
    if not isinstance(state, TrainState):
        raise TypeError(f"state: expected a fungrad TrainState, got {type(state).__name__}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike, got {type(path).__name__}")
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"path: {target} is a directory; expected a file name")
    return target


def _checked_config(config) -> dict:
    config = {} if config is None else config
    if not isinstance(config, dict):
        raise TypeError(f"config: expected a dict, got {type(config).__name__}")
    try:
        return json.loads(json.dumps(config, default=_archive.json_default))
    except (TypeError, ValueError) as error:
        raise TypeError(f"config: expected a JSON-serialisable dict; {error}") from error


def _named_arrays(values, argument: str, key: str, used: set[str]) -> tuple[list[dict], list]:
    """Metadata entries and members for ``history`` or ``progress``: name -> numeric array."""
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise TypeError(f"{argument}: expected a dict of {key} -> numeric array, got {values!r}")
    entries, members = [], []
    for name, value in values.items():
        array = np.asarray(jax.device_get(value))
        if not isinstance(name, str) or array.dtype.kind not in "biuf":
            raise TypeError(
                f"{argument}: expected {key} -> numeric array, got {name!r} -> {array.dtype}"
            )
        keys = [jax.tree_util.GetAttrKey(argument), jax.tree_util.DictKey(name)]
        member = _archive.member_name(keys, used)
        entries.append({"name": name, "member": member})
        members.append((member, array))
    return entries, members


def _checked_best(best, state: TrainState) -> tuple[np.ndarray, np.ndarray]:
    """``best.epoch`` and ``best.value`` as arrays, after checking every field of ``best``."""
    if not isinstance(best, Best):
        raise TypeError(f"best: expected a fungrad.checkpoint.Best, got {type(best).__name__}")
    if not isinstance(best.metric, str) or not best.metric:
        raise TypeError(
            f"best.metric: expected a metric name such as 'val_loss', got {best.metric!r}"
        )
    if best.mode not in ("min", "max"):
        raise ValueError(f"best.mode: expected 'min' or 'max', got {best.mode!r}")
    epoch = np.asarray(jax.device_get(best.epoch))
    value = np.asarray(jax.device_get(best.value))
    if epoch.dtype.kind not in "iu" or epoch.ndim > 1 or (epoch < 0).any():
        raise ValueError(
            f"best.epoch: expected an int >= 0 or a (runs,) array of them, got "
            f"{epoch.dtype}{epoch.shape}"
        )
    if value.dtype.kind not in "iuf" or value.shape != epoch.shape:
        raise ValueError(
            f"best.value: expected numbers shaped like best.epoch {epoch.shape}, got "
            f"{value.dtype}{value.shape}"
        )
    _check_like_state_params(best.params, state.params, epoch.shape)
    return epoch, value


def _check_like_state_params(params, state_params, runs: tuple[int, ...]) -> None:
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    expected = jax.tree_util.tree_structure(state_params)
    if treedef != expected:
        shown = str(treedef)
        shown = shown if len(shown) <= 120 else shown[:117] + "..."
        raise ValueError(
            f"best.params: expected the structure of state.params ({expected.num_leaves} "
            f"leaves), got {treedef.num_leaves} leaves: {shown}"
        )
    for (key_path, leaf), state_leaf in zip(flat, jax.tree.leaves(state_params), strict=True):
        signature, wanted = _archive.leaf_signature(leaf), _archive.leaf_signature(state_leaf)
        where = "best.params" + jax.tree_util.keystr(key_path)
        if signature != wanted:
            raise ValueError(
                f"{where}: expected {wanted[1]}{wanted[0]} as in state.params, got "
                f"{signature[1]}{signature[0]}"
            )
        if runs and signature[0][:1] != runs:
            raise ValueError(
                f"{where}: expected a leading axis of {runs[0]} runs (best.epoch has shape "
                f"{runs}), got shape {signature[0]}"
            )


def _best_parts(best: Best | None, state: TrainState, used: set[str]) -> tuple[Any, list]:
    """The ``best`` metadata entry (``None`` without a best) and its members."""
    if best is None:
        return None, []
    epoch, value = _checked_best(best, state)
    leaves, members = _archive.encode_tree(best.params, BEST_PARAMS, used)
    epoch_member = _archive.member_name((BEST, jax.tree_util.GetAttrKey("epoch")), used)
    value_member = _archive.member_name((BEST, jax.tree_util.GetAttrKey("value")), used)
    meta = {
        "metric": best.metric,
        "mode": best.mode,
        "epoch": {"member": epoch_member},
        "value": {"member": value_member},
        "leaves": leaves,
        "structure": _archive.describe(best.params, [0]),
    }
    return meta, [*members, (epoch_member, epoch), (value_member, value)]


def save(
    path: str | os.PathLike,
    state: TrainState,
    *,
    config: dict | None = None,
    history: dict | None = None,
    best: Best | None = None,
    progress: dict | None = None,
) -> Path:
    """Write ``state`` (and the run's config, history, best epoch and progress) to ``path``.

    The file is written beside ``path`` under a temporary name, flushed to disk, and renamed
    over ``path``: an interrupted save leaves any previous checkpoint at ``path`` intact.
    Missing parent directories are created.

    Args:
        path: the checkpoint file (``.npz`` or any name; nothing is appended).
        state: the :class:`~fungrad.train.TrainState` to save (``FitResult.state``).
        config: a JSON-serialisable dict describing the run (NumPy scalars and arrays are
            converted to numbers and lists).
        history: metric name -> per-epoch values (``FitResult.history``).
        best: the best epoch so far, its ``params`` of the same structure, shapes and dtypes
            as ``state.params`` (stacked over runs when ``epoch`` and ``value`` are ``(R,)``).
        progress: the loop's bookkeeping, name -> numeric array or scalar (``"epoch"``).

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        TypeError: if ``state`` is not a ``TrainState``, ``config`` is not JSON-serialisable,
            ``history`` or ``progress`` is not a dict of numeric arrays, or ``best`` is not a
            :class:`Best`.
        ValueError: if a leaf of ``state`` is sharded across processes, or a field of
            ``best`` does not fit the description above.
    """
    target = _checked_target(path, state)
    config = _checked_config(config)

    import fungrad

    used: set[str] = set()
    leaves, members = _archive.encode_tree(state, (), used)
    history_entries, history_members = _named_arrays(history, "history", "metric name", used)
    best_entry, best_members = _best_parts(best, state, used)
    progress_entries, progress_members = _named_arrays(progress, "progress", "name", used)
    counter = [0]
    structure = {
        field: _archive.describe(getattr(state, field), counter) for field in state._fields
    }
    meta = {
        "format": _archive.MAGIC,
        "format_version": FORMAT_VERSION,
        "fungrad_version": fungrad.__version__,
        "jax_version": jax.__version__,
        "leaves": leaves,
        "structure": structure,
        "history": history_entries,
        "config": config,
        "best": best_entry,
        "progress": progress_entries,
    }
    members += history_members + best_members + progress_members
    write_atomically(target, lambda file: _archive.write_archive(file, meta, members))
    return target
