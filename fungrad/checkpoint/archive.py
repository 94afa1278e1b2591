"""The pickle-free pytree archive: arrays as ``.npy`` members of a zip, the rest as JSON.

An archive is one uncompressed zip in NumPy's ``.npz`` layout: a ``__meta__.json`` member and
one ``.npy`` member per array. A pytree is stored as its leaves (one member each, named after
the leaf's path, e.g. ``params/0/w``) plus, in the metadata, one entry per leaf (member, path
such as ``.params[0]['w']``, dtype, shape) and a JSON description of the tree's structure:

* ``null`` for None, ``{"leaf": i}`` for the i-th leaf;
* ``{"list": [...]}``, ``{"tuple": [...]}``, ``{"dict": [[key, child], ...]}`` (keys in the
  sorted order JAX flattens them in);
* ``{"node": "TypeName", "leaves": [i, ...]}`` for any other node (optax's NamedTuple
  states, custom pytree classes): recorded by name only, so rebuilding it needs a template.

Typed PRNG keys are stored as their raw ``key_data`` with the name of their implementation;
dtypes ``.npy`` has no name for (bfloat16) as unsigned integers of the same width. Member
times are fixed, so the same content gives the same bytes.
"""

from __future__ import annotations

import io
import json
import re
import struct
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import jax
import jax.numpy as jnp
import numpy as np

from fungrad.checkpoint.errors import CheckpointError

FORMAT_VERSION = 2
"""The version of the file layout :func:`~fungrad.checkpoint.save` writes;
:func:`~fungrad.checkpoint.restore` reads this and older."""

MAGIC = "fungrad-checkpoint"
META = "__meta__.json"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed member times: the same state gives the same bytes
DAMAGED = (
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
"""The exceptions reading a damaged or truncated archive can raise."""

KeyPath = Sequence[Any]  # a sequence of jax.tree_util key entries

# --------------------------------------------------------------------------- tree structure


def describe(node, counter: list[int]):
    """The JSON description of ``node``'s structure; leaves are numbered from ``counter[0]``."""

    def take(count: int) -> list[int]:
        start = counter[0]
        counter[0] += count
        return list(range(start, start + count))

    if node is None:
        return None
    if type(node) in (list, tuple):
        return {type(node).__name__: [describe(child, counter) for child in node]}
    if type(node) is dict and all(isinstance(key, str) for key in node):
        return {"dict": [[key, describe(node[key], counter)] for key in sorted(node)]}
    treedef = jax.tree_util.tree_structure(node)
    if treedef.num_nodes == 1 and treedef.num_leaves == 1:  # a leaf, not an empty node
        return {"leaf": take(1)[0]}
    return {"node": type(node).__qualname__, "leaves": take(treedef.num_leaves)}


def unrebuildable(description) -> str | None:
    """The name of the first node of ``description`` that needs a template, or None."""
    if description is None or "leaf" in description:
        return None
    if "node" in description:
        return str(description["node"])
    children = next(iter(description.values()))
    if "dict" in description:
        children = [child for _, child in children]
    return next((name for child in children if (name := unrebuildable(child))), None)


def rebuild(description, leaves: list):
    """The tree ``description`` describes, from plain containers and ``leaves``."""
    if description is None:
        return None
    if "leaf" in description:
        return leaves[description["leaf"]]
    if "list" in description:
        return [rebuild(child, leaves) for child in description["list"]]
    if "tuple" in description:
        return tuple(rebuild(child, leaves) for child in description["tuple"])
    if "dict" in description:
        return {key: rebuild(child, leaves) for key, child in description["dict"]}
    raise KeyError(f"unknown structure node {description!r}")


def member_name(path: KeyPath, used: set[str]) -> str:
    """A member name for the leaf at ``path`` (``params/0/w``), unique within ``used``."""
    parts = []
    for entry in path:
        for attribute in ("name", "key", "idx"):
            if hasattr(entry, attribute):
                part = re.sub(r"[^A-Za-z0-9_.\-]", "_", str(getattr(entry, attribute)))
                parts.append("_" if part in ("", ".", "..") else part)
                break
    name = "/".join(parts) or "leaf"
    unique, suffix = name, 1
    while unique in used or unique == META:
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
    # NumPy dtypes are never key dtypes; the check is only needed for JAX's extended ones.
    if not isinstance(leaf.dtype, np.dtype) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        info["key_impl"] = str(jax.random.key_impl(leaf))
        leaf = jax.random.key_data(leaf)
    array = leaf if isinstance(leaf, np.ndarray) else np.asarray(jax.device_get(leaf))
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


def leaf_signature(leaf) -> tuple[tuple[int, ...], str]:
    """A leaf's ``(shape, dtype name)``, as the metadata records them."""
    if not hasattr(leaf, "dtype"):
        leaf = jnp.asarray(leaf)
    return tuple(leaf.shape), str(leaf.dtype)


def encode_tree(
    tree, prefix: KeyPath, used: set[str]
) -> tuple[list[dict], list[tuple[str, np.ndarray]]]:
    """The metadata entries and ``(member, array)`` pairs of ``tree``'s leaves.

    Args:
        tree: the pytree to store.
        prefix: key entries put before every leaf's path (``GetAttrKey("best")``, ...).
        used: member names already taken; the new ones are added.

    Returns:
        One ``{"member", "path", "dtype", "shape"[, "key_impl"]}`` dict per leaf, and the
        arrays to write.

    Raises:
        ValueError: if a leaf is sharded across processes.
    """
    entries, members = [], []
    for key_path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        full = (*prefix, *key_path)
        where = jax.tree_util.keystr(full)
        array, info = _encode_leaf(leaf, where)
        name = member_name(full, used)
        entries.append({"member": name, "path": where, **info})
        members.append((name, array))
    return entries, members


def decode_leaves(archive: zipfile.ZipFile, entries: list[dict]) -> list:
    """The leaves ``entries`` describe, read from ``archive`` as JAX arrays."""
    return [_decode_leaf(read_array(archive, info["member"]), info) for info in entries]


def check_template(
    entries: list[dict], like, prefix: KeyPath, what: str, path: Path
) -> tuple[list, Any]:
    """The template's leaves and structure, checked against the stored leaf ``entries``.

    Raises:
        CheckpointError: naming ``what`` (``"state"``, ``"best.params"``) if the paths differ,
            or the first leaf whose shape or dtype differs.
    """
    flat, treedef = jax.tree_util.tree_flatten_with_path(like)
    paths = [jax.tree_util.keystr((*prefix, *key_path)) for key_path, _ in flat]
    stored_paths = [info["path"] for info in entries]
    if paths != stored_paths:
        only_file = [p for p in stored_paths if p not in paths]
        only_like = [p for p in paths if p not in stored_paths]
        raise CheckpointError(
            f"{path}: the checkpoint's {what} has a different structure from like: "
            f"{len(stored_paths)} leaves in the file, {len(paths)} in like; only in the file: "
            f"{', '.join(only_file[:4]) or '-'}; only in like: {', '.join(only_like[:4]) or '-'} "
            "(was it saved with another optimizer or architecture?)"
        )
    for (_, leaf), info in zip(flat, entries, strict=True):
        shape, dtype = leaf_signature(leaf)
        if shape != tuple(info["shape"]) or dtype != info["dtype"]:
            raise CheckpointError(
                f"{path}: leaf {info['path']} is {info['dtype']}{tuple(info['shape'])} in the "
                f"checkpoint but {dtype}{shape} in like"
            )
    return [leaf for _, leaf in flat], treedef


def place_like(leaves: list, templates: list) -> list:
    """Each leaf put on its template's sharding (templates that are not arrays: as it is)."""
    return [
        jax.device_put(leaf, template.sharding) if isinstance(template, jax.Array) else leaf
        for leaf, template in zip(leaves, templates, strict=True)
    ]


# --------------------------------------------------------------------------- the zip


def json_default(value):
    """``json.dumps``'s fallback: NumPy and JAX scalars and arrays as numbers and lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, jax.Array)):
        return np.asarray(value).tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def write_archive(file: BinaryIO, meta: dict, members: list[tuple[str, np.ndarray]]) -> None:
    """Write ``meta`` as ``__meta__.json`` and each array as ``<member>.npy``, uncompressed."""
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        info = zipfile.ZipInfo(META, date_time=_ZIP_EPOCH)
        info.external_attr = 0o644 << 16
        # Compact: json's C encoder, several times faster than an indented dump.
        archive.writestr(info, json.dumps(meta, separators=(",", ":")))
        for name, array in members:
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def open_archive(path: Path) -> zipfile.ZipFile:
    """Open ``path`` as a zip; a file that is none raises a one-line ``CheckpointError``."""
    try:
        return zipfile.ZipFile(path)
    except DAMAGED as error:
        raise CheckpointError(
            f"{path}: not a fungrad checkpoint, or a damaged or truncated one: it is not a "
            f"readable zip/.npz archive ({error})"
        ) from error


def read_meta(archive: zipfile.ZipFile, path: Path) -> dict:
    """The archive's metadata, checked to be a fungrad checkpoint of a version this reads."""
    names = archive.namelist()
    if META not in names:
        held = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise CheckpointError(
            f"{path}: not a fungrad checkpoint: no {META} entry (the archive holds: "
            f"{held or 'nothing'})"
        )
    try:
        meta = json.loads(archive.read(META).decode("utf-8"))
    except (*DAMAGED, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: damaged checkpoint: unreadable {META} ({error})") from error
    if not isinstance(meta, dict) or meta.get("format") != MAGIC:
        raise CheckpointError(
            f"{path}: not a fungrad checkpoint: {META} lacks the format marker {MAGIC!r}"
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


def read_array(archive: zipfile.ZipFile, member: str) -> np.ndarray:
    """The array stored as ``<member>.npy`` (its CRC checked, no pickle allowed)."""
    # read() checks the member's CRC, so flipped bits are caught here.
    return np.lib.format.read_array(io.BytesIO(archive.read(member + ".npy")), allow_pickle=False)
