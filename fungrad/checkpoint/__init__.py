"""Save and restore a whole training state, atomically, in a file NumPy alone can read.

A checkpoint is one uncompressed zip archive in NumPy's ``.npz`` layout:

* ``__meta__.json``: the format marker and version, each leaf's path, dtype and shape, a
  description of the state's tree structure, the run's config and the history's names;
* one ``.npy`` member per leaf of the :class:`~fungrad.train.TrainState`, named after its
  path (``params/0/w``, ``opt_state/0/trace/0/b``, ``step``, ``key``);
* one ``.npy`` member per history metric (``history/loss``).

No pickle anywhere: loading runs no code, and ``np.load(path)["params/0/w"]`` reads a weight
matrix without fungrad. Typed PRNG keys are stored as their raw ``key_data`` with the name of
their implementation. :func:`save` writes a temporary file beside the target, flushes it to disk
(``os.fsync``) and renames it over the target, so a run killed mid-write leaves the previous
checkpoint whole.

Example:
    >>> import jax, jax.numpy as jnp, tempfile, os
    >>> from fungrad import mlp, optim
    >>> from fungrad.train import TrainState
    >>> params = mlp.init(jax.random.key(0), [2, 3, 1])
    >>> opt = optim.momentum(0.1)
    >>> state = TrainState(params, opt.init(params), jnp.zeros((), jnp.int32), jax.random.key(1))
    >>> path = save(os.path.join(tempfile.mkdtemp(), "run.ckpt"), state, config={"lr": 0.1})
    >>> restored = restore(path, like=state)
    >>> restored.config
    {'lr': 0.1}
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fungrad.train import FitResult, TrainState

__all__ = [
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "CheckpointNotFoundError",
    "save",
    "restore",
]

FORMAT_VERSION = 1
"""The version of the file layout :func:`save` writes; :func:`restore` reads this and older."""

_MAGIC = "fungrad-checkpoint"
_META = "__meta__.json"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed member times: the same state gives the same bytes
_DAMAGED = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    struct.error,
    zlib.error,
    NotImplementedError,
)


class CheckpointError(ValueError):
    """A checkpoint file is damaged, truncated, not a fungrad checkpoint, of an unknown format
    version, or does not match the template it is restored into."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint file does not exist (both a ``CheckpointError`` and a ``FileNotFoundError``)."""


class Checkpoint(NamedTuple):
    """What :func:`restore` returns.

    Attributes:
        state: the :class:`~fungrad.train.TrainState`, leaves as JAX arrays.
        config: the JSON config saved with it (``{}`` if none).
        history: per-epoch metrics, name -> NumPy array (``{}`` if none).
    """

    state: TrainState
    config: dict
    history: dict


# --------------------------------------------------------------------------- tree structure
#
# The structure is described in JSON, not pickled: ``null`` for None, ``{"leaf": i}``,
# ``{"list": [...]}``, ``{"tuple": [...]}``, ``{"dict": [[key, child], ...]}`` (keys in the
# sorted order JAX flattens them in). Any other node (optax's NamedTuple states, custom pytree
# classes) is recorded by type name and leaf indices only: rebuilding it needs ``like``.


def _describe(node, counter: list[int]):
    def take(count: int) -> list[int]:
        start = counter[0]
        counter[0] += count
        return list(range(start, start + count))

    if node is None:
        return None
    if type(node) in (list, tuple):
        return {type(node).__name__: [_describe(child, counter) for child in node]}
    if type(node) is dict and all(isinstance(key, str) for key in node):
        return {"dict": [[key, _describe(node[key], counter)] for key in sorted(node)]}
    treedef = jax.tree_util.tree_structure(node)
    if treedef.num_nodes == 1 and treedef.num_leaves == 1:  # a leaf, not an empty node
        return {"leaf": take(1)[0]}
    return {"node": type(node).__qualname__, "leaves": take(treedef.num_leaves)}


def _rebuildable(description) -> bool:
    if description is None or "leaf" in description:
        return True
    if "node" in description:
        return False
    children = next(iter(description.values()))
    if "dict" in description:
        children = [child for _, child in children]
    return all(_rebuildable(child) for child in children)


def _rebuild(description, leaves: list):
    if description is None:
        return None
    if "leaf" in description:
        return leaves[description["leaf"]]
    if "list" in description:
        return [_rebuild(child, leaves) for child in description["list"]]
    if "tuple" in description:
        return tuple(_rebuild(child, leaves) for child in description["tuple"])
    if "dict" in description:
        return {key: _rebuild(child, leaves) for key, child in description["dict"]}
    raise KeyError(f"unknown structure node {description!r}")


def _member_name(path, used: set[str]) -> str:
    parts = []
    for entry in path:
        for attribute in ("name", "key", "idx"):
            if hasattr(entry, attribute):
                part = re.sub(r"[^A-Za-z0-9_.\-]", "_", str(getattr(entry, attribute)))
                parts.append("_" if part in ("", ".", "..") else part)
                break
    name = "/".join(parts) or "leaf"
    unique, suffix = name, 1
    while unique in used or unique == _META:
        unique, suffix = f"{name}~{suffix}", suffix + 1
    used.add(unique)
    return unique


# --------------------------------------------------------------------------- leaves


def _encode_leaf(leaf, where: str) -> tuple[np.ndarray, dict]:
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        raise ValueError(
            f"state: leaf {where} is sharded across processes; gather it first (e.g. "
            "jax.experimental.multihost_utils.process_allgather) and save from one process"
        )
    if not hasattr(leaf, "dtype"):
        leaf = jnp.asarray(leaf)
    info: dict[str, Any] = {"dtype": str(leaf.dtype), "shape": list(leaf.shape)}
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        info["key_impl"] = str(jax.random.key_impl(leaf))
        leaf = jax.random.key_data(leaf)
    array = np.asarray(jax.device_get(leaf))
    if array.dtype.kind not in "biufc":
        # bfloat16 and friends: .npy has no name for them, so store the bits as unsigned ints.
        array = array.view(f"u{array.dtype.itemsize}")
    return array, info


def _decode_leaf(array: np.ndarray, info: dict):
    if "key_impl" in info:
        value = jax.random.wrap_key_data(jnp.asarray(array), impl=info["key_impl"])
    else:
        dtype = jnp.dtype(info["dtype"])
        value = jnp.asarray(array if array.dtype == dtype else array.view(dtype))
    if list(value.shape) != list(info["shape"]):
        raise ValueError(f"leaf {info['path']} has shape {value.shape}, recorded {info['shape']}")
    return value


def _leaf_signature(leaf) -> tuple[tuple[int, ...], str]:
    if not hasattr(leaf, "dtype"):
        leaf = jnp.asarray(leaf)
    return tuple(leaf.shape), str(leaf.dtype)


# --------------------------------------------------------------------------- writing


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, jax.Array)):
        return np.asarray(value).tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _write_atomically(target: Path, write) -> None:
    """Write through ``write(file)`` to a temporary file beside ``target``, then rename it.

    The rename is atomic on POSIX and Windows, so readers see either the old file or the
    complete new one. A temporary file left by a hard kill (``.<name>.<random>.tmp``) is safe to
    delete.
    """
    directory = target.parent
    directory.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temporary = directory / f".{target.name}.{secrets.token_hex(6)}.tmp"
        try:
            descriptor = os.open(temporary, flags, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    # Make the rename itself durable; directories cannot be opened on Windows.
    with contextlib.suppress(OSError):
        directory_descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_descriptor)
        finally:
            os.close(directory_descriptor)


def _write_archive(file: BinaryIO, meta: dict, members: list[tuple[str, np.ndarray]]) -> None:
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        info = zipfile.ZipInfo(_META, date_time=_ZIP_EPOCH)
        info.external_attr = 0o644 << 16
        archive.writestr(info, json.dumps(meta, indent=1))
        for name, array in members:
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def save(
    path: str | os.PathLike,
    state: TrainState,
    *,
    config: dict | None = None,
    history: dict | None = None,
) -> Path:
    """Write ``state`` (and the run's config and history) to ``path``, atomically.

    The file is written beside ``path`` under a temporary name, flushed to disk, and renamed
    over ``path``: an interrupted save leaves any previous checkpoint at ``path`` intact.
    Missing parent directories are created.

    Args:
        path: the checkpoint file (``.npz`` or any name; nothing is appended).
        state: the :class:`~fungrad.train.TrainState` to save (``FitResult.state``).
        config: a JSON-serialisable dict describing the run (NumPy scalars and arrays are
            converted to numbers and lists).
        history: metric name -> per-epoch values (``FitResult.history``).

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        TypeError: if ``state`` is not a ``TrainState``, ``config`` is not JSON-serialisable or
            ``history`` is not a dict of numeric arrays.
        ValueError: if a leaf of ``state`` is sharded across processes.
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
    config = {} if config is None else config
    if not isinstance(config, dict):
        raise TypeError(f"config: expected a dict, got {type(config).__name__}")
    try:
        config = json.loads(json.dumps(config, default=_json_default))
    except (TypeError, ValueError) as error:
        raise TypeError(f"config: expected a JSON-serialisable dict; {error}") from error
    history = {} if history is None else history
    if not isinstance(history, dict):
        raise TypeError(f"history: expected a dict of metric name -> array, got {history!r}")

    import fungrad

    used: set[str] = set()
    members, leaves = [], []
    for key_path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        where = jax.tree_util.keystr(key_path)
        array, info = _encode_leaf(leaf, where)
        name = _member_name(key_path, used)
        leaves.append({"member": name, "path": where, **info})
        members.append((name, array))
    history_meta = []
    for metric, values in history.items():
        values = np.asarray(values)
        if not isinstance(metric, str) or values.dtype.kind not in "biuf":
            raise TypeError(
                f"history: expected metric name -> numeric array, got {metric!r} -> {values.dtype}"
            )
        name = _member_name(
            [jax.tree_util.GetAttrKey("history"), jax.tree_util.DictKey(metric)], used
        )
        history_meta.append({"name": metric, "member": name})
        members.append((name, values))
    counter = [0]
    structure = {field: _describe(getattr(state, field), counter) for field in TrainState._fields}
    meta = {
        "format": _MAGIC,
        "format_version": FORMAT_VERSION,
        "fungrad_version": fungrad.__version__,
        "jax_version": jax.__version__,
        "leaves": leaves,
        "structure": structure,
        "history": history_meta,
        "config": config,
    }
    _write_atomically(target, lambda file: _write_archive(file, meta, members))
    return target


# --------------------------------------------------------------------------- reading


def _read_meta(archive: zipfile.ZipFile, path: Path) -> dict:
    names = archive.namelist()
    if _META not in names:
        held = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise CheckpointError(
            f"{path}: not a fungrad checkpoint: no {_META} entry (the archive holds: "
            f"{held or 'nothing'})"
        )
    try:
        meta = json.loads(archive.read(_META).decode("utf-8"))
    except (*_DAMAGED, UnicodeDecodeError) as error:
        raise CheckpointError(
            f"{path}: damaged checkpoint: unreadable {_META} ({error})"
        ) from error
    if not isinstance(meta, dict) or meta.get("format") != _MAGIC:
        raise CheckpointError(
            f"{path}: not a fungrad checkpoint: {_META} lacks the format marker {_MAGIC!r}"
        )
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: damaged checkpoint: invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: written in checkpoint format version {version}, but this fungrad reads "
            f"version {FORMAT_VERSION} and older; upgrade fungrad to restore it"
        )
    return meta


def _read_array(archive: zipfile.ZipFile, member: str) -> np.ndarray:
    # read() checks the member's CRC, so flipped bits are caught here.
    return np.lib.format.read_array(io.BytesIO(archive.read(member + ".npy")), allow_pickle=False)


def _like_leaves(stored: list[dict], like: TrainState, path: Path) -> tuple[list, Any]:
    """The template's leaves and structure, checked against the stored leaves."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(like)
    paths = [jax.tree_util.keystr(key_path) for key_path, _ in flat]
    stored_paths = [info["path"] for info in stored]
    if paths != stored_paths:
        only_file = [p for p in stored_paths if p not in paths]
        only_like = [p for p in paths if p not in stored_paths]
        raise CheckpointError(
            f"{path}: the checkpoint's state has a different structure from like: "
            f"{len(stored_paths)} leaves in the file, {len(paths)} in like; only in the file: "
            f"{', '.join(only_file[:4]) or '-'}; only in like: {', '.join(only_like[:4]) or '-'} "
            "(was it saved with another optimizer or architecture?)"
        )
    for (_, leaf), info in zip(flat, stored, strict=True):
        shape, dtype = _leaf_signature(leaf)
        if shape != tuple(info["shape"]) or dtype != info["dtype"]:
            raise CheckpointError(
                f"{path}: leaf {info['path']} is {info['dtype']}{tuple(info['shape'])} in the "
                f"checkpoint but {dtype}{shape} in like"
            )
    return [leaf for _, leaf in flat], treedef


def restore(path: str | os.PathLike, *, like: TrainState | None = None) -> Checkpoint:
    """Read a checkpoint written by :func:`save`.

    Without ``like``, the state is rebuilt from the file alone: ``params`` (lists, tuples and
    dicts of arrays, as an MLP's are), ``step`` and ``key`` come back as saved; ``opt_state``
    comes back too when it is made of plain containers, but optax's states are NamedTuples,
    which the file records only by name, so then ``opt_state`` is ``None``. Give ``like`` (a
    template ``TrainState``, e.g. ``TrainState(params, optimizer.init(params), step, key)``,
    or its ``jax.eval_shape``) to restore everything in the template's structure, with each
    leaf checked against the template's shape and dtype (and placed with its sharding).

    Args:
        path: the checkpoint file.
        like: a template for the state's structure.

    Returns:
        A :class:`Checkpoint` of the state, config and history.

    Raises:
        CheckpointNotFoundError: if the file does not exist.
        CheckpointError: if the file is damaged, truncated, not a fungrad checkpoint, of a newer
            format version, or does not match ``like``.
        TypeError: if ``like`` is not a ``TrainState``.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike, got {type(path).__name__}")
    if like is not None and not isinstance(like, TrainState):
        raise TypeError(f"like: expected a fungrad TrainState template, got {type(like).__name__}")
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise CheckpointError(f"{path}: is a directory; expected a checkpoint file")
        raise CheckpointNotFoundError(f"{path}: no such checkpoint file")
    try:
        archive = zipfile.ZipFile(path)
    except _DAMAGED as error:
        raise CheckpointError(
            f"{path}: not a fungrad checkpoint, or a damaged or truncated one: it is not a "
            f"readable zip/.npz archive ({error})"
        ) from error
    with archive:
        meta = _read_meta(archive, path)
        try:
            stored = meta["leaves"]
            arrays = [_read_array(archive, info["member"]) for info in stored]
            leaves = [_decode_leaf(array, info) for array, info in zip(arrays, stored, strict=True)]
            history = {
                entry["name"]: _read_array(archive, entry["member"]) for entry in meta["history"]
            }
            config = meta["config"]
            structure = meta["structure"]
        except CheckpointError:
            raise
        except (*_DAMAGED, TypeError, IndexError, AttributeError) as error:
            raise CheckpointError(f"{path}: damaged checkpoint ({error!r})") from error
    if like is not None:
        templates, treedef = _like_leaves(stored, like, path)
        placed = [
            jax.device_put(leaf, template.sharding) if isinstance(template, jax.Array) else leaf
            for leaf, template in zip(leaves, templates, strict=True)
        ]
        return Checkpoint(jax.tree_util.tree_unflatten(treedef, placed), config, history)
    try:
        return Checkpoint(_state_from_file(structure, stored, leaves, path), config, history)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, StopIteration) as error:
        raise CheckpointError(f"{path}: damaged checkpoint structure ({error!r})") from error


def _state_from_file(structure: dict, stored: list[dict], leaves: list, path: Path) -> TrainState:
    """Rebuild the state from the structure recorded in the file (no template)."""
    fields = {}
    for field in TrainState._fields:
        description = structure[field]
        if _rebuildable(description):
            fields[field] = _rebuild(description, leaves)
        elif field == "opt_state":
            fields[field] = None
        else:
            raise CheckpointError(
                f"{path}: the saved {field} holds a {description['node']}, which cannot be "
                "rebuilt from the file alone; pass like=<a TrainState of the same structure>"
            )
    state = TrainState(**fields)
    flat = jax.tree_util.tree_flatten_with_path(state)[0]
    rebuilt = [jax.tree_util.keystr(key_path) for key_path, _ in flat]
    expected = [
        info["path"]
        for info in stored
        if fields["opt_state"] is not None or not info["path"].startswith(".opt_state")
    ]
    if rebuilt != expected:
        raise CheckpointError(
            f"{path}: damaged checkpoint: its structure does not match its leaves"
        )
    return state
