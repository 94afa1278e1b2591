"""Reading a checkpoint back: the archive decoded, then put into trees, either in the
structure of a template state or rebuilt from the structure the file records.

See :mod:`fungrad.checkpoint` for the file's layout and :func:`restore` for its arguments.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import NamedTuple

import jax

from fungrad.checkpoint import archive as _archive
from fungrad.checkpoint.errors import CheckpointError, CheckpointNotFoundError
from fungrad.checkpoint.saving import BEST_PARAMS, Best
from fungrad.train import TrainState

__all__ = ["Checkpoint", "restore"]


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
            entry["leaves"], like.params, BEST_PARAMS, "best.params", path
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
        _check_rebuilt(params, BEST_PARAMS, [info["path"] for info in entry["leaves"]], path)
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
