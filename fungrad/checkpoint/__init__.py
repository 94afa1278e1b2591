"""Save and restore a whole training state, atomically, in a file NumPy alone can read.

A checkpoint is one uncompressed zip archive in NumPy's ``.npz`` layout
(:mod:`fungrad.checkpoint.archive`):

* ``__meta__.json``: the format marker and version, each leaf's path, dtype and shape, a
  description of the state's tree structure, the run's config, the history's and the
  progress's names, and the best epoch's metric and direction;
* one ``.npy`` member per leaf of the :class:`~fungrad.train.TrainState`, named after its
  path (``params/0/w``, ``opt_state/0/trace/0/b``, ``step``, ``key``);
* one ``.npy`` member per history metric (``history/loss``) and per progress entry
  (``progress/epoch``);
* the best epoch's parameters (``best/params/0/w``, ...), its number and the metric's value
  then (``best/epoch``, ``best/value``).

No pickle anywhere: loading runs no code, and ``np.load(path)["params/0/w"]`` reads a weight
matrix without fungrad. :func:`save` writes a temporary file beside the target, flushes it to
disk (``os.fsync``) and renames it over the target (:mod:`fungrad.checkpoint.atomic`), so a run
killed mid-write leaves the previous checkpoint whole. Files of format version 1 (no best, no
progress) still restore.

Example:
    >>> import jax, jax.numpy as jnp, numpy as np, tempfile, os
    >>> from fungrad import mlp, optim
    >>> from fungrad.train import TrainState
    >>> params = mlp.init(jax.random.key(0), [2, 3, 1])
    >>> opt = optim.momentum(0.1)
    >>> state = TrainState(params, opt.init(params), jnp.zeros((), jnp.int32), jax.random.key(1))
    >>> best = Best(params, epoch=4, value=0.25, metric="val_loss", mode="min")
    >>> path = save(os.path.join(tempfile.mkdtemp(), "run.npz"), state, config={"lr": 0.1},
    ...             best=best, progress={"epoch": np.array(5)})
    >>> restored = restore(path, like=state)
    >>> restored.config, restored.best.epoch, restored.best.value, restored.best.metric
    ({'lr': 0.1}, 4, 0.25, 'val_loss')
    >>> int(restored.progress["epoch"])
    5
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from fungrad.checkpoint import archive as _archive
from fungrad.checkpoint.archive import FORMAT_VERSION
from fungrad.checkpoint.atomic import check_folder, remove_leftovers, write_atomically, write_text
from fungrad.checkpoint.errors import CheckpointError, CheckpointNotFoundError
from fungrad.train import FitResult, TrainState

__all__ = [
    "FORMAT_VERSION",
    "Best",
    "Checkpoint",
    "CheckpointError",
    "CheckpointNotFoundError",
    "save",
    "restore",
    "write_atomically",
    "write_text",
    "remove_leftovers",
    "check_folder",
]

_BEST = jax.tree_util.GetAttrKey("best")
_BEST_PARAMS = (_BEST, jax.tree_util.GetAttrKey("params"))


class Best(NamedTuple):
    """The best epoch so far by `metric` (for fit_restarts: each field stacked over runs)."""

    params: Any  # the parameters after that epoch (same structure as state.params)
    epoch: Any  # the 1-based epoch number (int, or (R,) int array for restarts); 0 = none yet
    value: Any  # the metric's value then (float, or (R,) array)
    metric: str  # e.g. "val_loss"
    mode: str  # "min" or "max"


class Checkpoint(NamedTuple):
    """What :func:`restore` returns.

    Attributes:
        state: the :class:`~fungrad.train.TrainState`, leaves as JAX arrays.
        config: the JSON config saved with it (``{}`` if none).
        history: per-epoch metrics, name -> NumPy array (``{}`` if none).
        best: the best epoch's parameters, number and metric value (``None`` if none was
            saved, and for files of format version 1); a single run's ``epoch`` and ``value``
            come back as ``int`` and ``float``, stacked ones as NumPy arrays.
        progress: the loop's bookkeeping, name -> NumPy array (``{}`` if none).
    """

    state: TrainState
    config: dict
    history: dict  # name -> NumPy array
    best: Best | None = None
    progress: dict = {}  # name -> NumPy array (e.g. "epoch", "code"): loop bookkeeping


# --------------------------------------------------------------------------- saving


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
    leaves, members = _archive.encode_tree(best.params, _BEST_PARAMS, used)
    epoch_member = _archive.member_name((_BEST, jax.tree_util.GetAttrKey("epoch")), used)
    value_member = _archive.member_name((_BEST, jax.tree_util.GetAttrKey("value")), used)
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
    if isinstance(state, FitResult):
        raise TypeError("state: expected a TrainState, got a FitResult; pass result.state")
    if not isinstance(state, TrainState):
        raise TypeError(f"state: expected a fungrad TrainState, got {type(state).__name__}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike, got {type(path).__name__}")
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"path: {target} is a directory; expected a file name")
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


# --------------------------------------------------------------------------- restoring


class _Stored(NamedTuple):
    """What a checkpoint file holds, read and decoded but not yet put into trees."""

    entries: list[dict]
    leaves: list
    structure: dict
    config: dict
    history: dict
    best: dict | None  # the metadata entry, with "decoded", "epoch_array", "value_array"
    progress: dict


def _read_stored(archive: zipfile.ZipFile, meta: dict) -> _Stored:
    entries = meta["leaves"]
    version = meta["format_version"]
    best = meta["best"] if version >= 2 else None
    if best is not None:
        best = {
            **best,
            "decoded": _archive.decode_leaves(archive, best["leaves"]),
            "epoch_array": _archive.read_array(archive, best["epoch"]["member"]),
            "value_array": _archive.read_array(archive, best["value"]["member"]),
        }
    progress = meta["progress"] if version >= 2 else []
    return _Stored(
        entries=entries,
        leaves=_archive.decode_leaves(archive, entries),
        structure=meta["structure"],
        config=meta["config"],
        history={e["name"]: _archive.read_array(archive, e["member"]) for e in meta["history"]},
        best=best,
        progress={e["name"]: _archive.read_array(archive, e["member"]) for e in progress},
    )


def _checked_file(path, like) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike, got {type(path).__name__}")
    if like is not None and not isinstance(like, TrainState):
        raise TypeError(f"like: expected a fungrad TrainState template, got {type(like).__name__}")
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise CheckpointError(f"{path}: is a directory; expected a checkpoint file")
        raise CheckpointNotFoundError(f"{path}: no such checkpoint file")
    return path


def restore(path: str | os.PathLike, *, like: TrainState | None = None) -> Checkpoint:
    """Read a checkpoint written by :func:`save` (format version 2 or 1).

    Without ``like``, the state is rebuilt from the file alone: ``params`` (lists, tuples and
    dicts of arrays, as an MLP's are), ``step`` and ``key`` come back as saved; ``opt_state``
    comes back too when it is made of plain containers, but optax's states are NamedTuples,
    which the file records only by name, so then ``opt_state`` is ``None``. Give ``like`` (a
    template ``TrainState``, e.g. ``TrainState(params, optimizer.init(params), step, key)``,
    or its ``jax.eval_shape``) to restore everything in the template's structure, with each
    leaf checked against the template's shape and dtype (and placed with its sharding). The
    best epoch's parameters are restored the same way, in the structure of ``like.params``.

    Args:
        path: the checkpoint file.
        like: a template for the state's structure.

    Returns:
        A :class:`Checkpoint` of the state, config, history, best epoch and progress.

    Raises:
        CheckpointNotFoundError: if the file does not exist.
        CheckpointError: if the file is damaged, truncated, not a fungrad checkpoint, of a newer
            format version, or does not match ``like``.
        TypeError: if ``like`` is not a ``TrainState``.
    """
    path = _checked_file(path, like)
    with _archive.open_archive(path) as archive:
        meta = _archive.read_meta(archive, path)
        try:
            stored = _read_stored(archive, meta)
        except CheckpointError:
            raise
        except (*_archive.DAMAGED, TypeError, IndexError, AttributeError) as error:
            raise CheckpointError(f"{path}: damaged checkpoint ({error!r})") from error
    try:
        state = _state_from(stored, like, path)
        best = None if stored.best is None else _best_from(stored.best, like, path)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, StopIteration) as error:
        raise CheckpointError(f"{path}: damaged checkpoint structure ({error!r})") from error
    return Checkpoint(state, stored.config, stored.history, best, stored.progress)


def _state_from(stored: _Stored, like: TrainState | None, path: Path) -> TrainState:
    """The state in ``like``'s structure, or rebuilt from the structure the file records."""
    if like is not None:
        templates, treedef = _archive.check_template(stored.entries, like, (), "state", path)
        placed = _archive.place_like(stored.leaves, templates)
        return jax.tree_util.tree_unflatten(treedef, placed)
    fields = {}
    for field in TrainState._fields:
        description = stored.structure[field]
        node = _archive.unrebuildable(description)
        if node is None:
            fields[field] = _archive.rebuild(description, stored.leaves)
        elif field == "opt_state":
            fields[field] = None
        else:
            raise CheckpointError(
                f"{path}: the saved {field} holds a {node}, which cannot be rebuilt from the "
                "file alone; pass like=<a TrainState of the same structure>"
            )
    state = TrainState(**fields)
    skipped = ".opt_state" if fields["opt_state"] is None else None
    expected = [
        info["path"]
        for info in stored.entries
        if skipped is None or not info["path"].startswith(skipped)
    ]
    _check_rebuilt(state, (), expected, path)
    return state


def _best_from(entry: dict, like: TrainState | None, path: Path) -> Best:
    """The best epoch, its parameters in ``like.params``'s structure or the recorded one."""
    if like is not None:
        templates, treedef = _archive.check_template(
            entry["leaves"], like.params, _BEST_PARAMS, "best.params", path
        )
        params = jax.tree_util.tree_unflatten(
            treedef, _archive.place_like(entry["decoded"], templates)
        )
    else:
        node = _archive.unrebuildable(entry["structure"])
        if node is not None:
            raise CheckpointError(
                f"{path}: the saved best.params holds a {node}, which cannot be rebuilt from "
                "the file alone; pass like=<a TrainState of the same structure>"
            )
        params = _archive.rebuild(entry["structure"], entry["decoded"])
        _check_rebuilt(params, _BEST_PARAMS, [info["path"] for info in entry["leaves"]], path)
    epoch, value = entry["epoch_array"], entry["value_array"]
    if epoch.ndim == 0:
        epoch, value = int(epoch), float(value)
    mode = entry["mode"]
    if mode not in ("min", "max") or not isinstance(entry["metric"], str):
        raise ValueError(f"best's metric {entry['metric']!r} or mode {mode!r} is not valid")
    return Best(params, epoch, value, entry["metric"], mode)


def _check_rebuilt(tree, prefix: tuple, expected: list[str], path: Path) -> None:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    rebuilt = [jax.tree_util.keystr((*prefix, *key_path)) for key_path, _ in flat]
    if rebuilt != expected:
        raise CheckpointError(
            f"{path}: damaged checkpoint: its structure does not match its leaves"
        )
