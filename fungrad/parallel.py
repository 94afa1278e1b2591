"""Data-parallel training and spread-out restarts through JAX's own sharding.

fungrad adds no communication of its own. Given a ``jax.sharding.Mesh``:

- with a ``"data"`` axis, the batch axis of every minibatch is sharded across that axis
  (``NamedSharding(mesh, P("data"))``) while parameters and optimizer state are replicated;
  the gradient is a sum over the batch, so XLA inserts the all-reduce;
- with a ``"runs"`` axis (:func:`fungrad.fit_restarts` only), the restarts are spread over
  the devices: each device trains ``runs / devices`` of them.

On one host the training data are replicated on every device of the mesh (each device slices
its part of a minibatch locally). On several hosts, each process loads its own rows
(:func:`fungrad.data.shard_for_process`) and passes a global array built with
``jax.make_array_from_process_local_data``; fit then uses it as it is.
"""

from __future__ import annotations

from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = ["data_mesh", "check_mesh", "replicated", "batch_sharded", "place"]

DATA_AXIS = "data"
RUNS_AXIS = "runs"


def data_mesh(devices: int | str | None = None) -> Mesh:
    """A 1-D mesh with a ``"data"`` axis over the first ``devices`` devices (``"all"``/None: all)."""
    available = jax.devices()
    count = len(available) if devices in (None, "all") else devices
    if not isinstance(count, int) or not 1 <= count <= len(available):
        raise ValueError(
            f"devices: expected 'all' or an integer in [1, {len(available)}], got {devices!r}"
        )
    return Mesh(available[:count], (DATA_AXIS,))


def check_mesh(mesh: Any, *, batch: int, axes: tuple[str, ...] = (DATA_AXIS,)) -> None:
    """Raise a clear error unless ``mesh`` is a ``Mesh`` with one of ``axes`` fitting ``batch``.

    ``batch`` is the number of samples per step (the minibatch, or all samples for full-batch
    GD); it must be divisible by the size of the ``"data"`` axis so every device gets the same
    share. A last partial minibatch is padded and masked to the full size, so only the
    minibatch size matters, not the number of samples.
    """
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh: expected a jax.sharding.Mesh, got {type(mesh).__name__}")
    if not any(axis in mesh.axis_names for axis in axes):
        raise ValueError(
            f"mesh: expected an axis named {' or '.join(repr(a) for a in axes)}, "
            f"got axes {tuple(mesh.axis_names)}"
        )
    if DATA_AXIS in mesh.axis_names:
        size = mesh.shape[DATA_AXIS]
        if batch % size:
            raise ValueError(
                f"batch_size: {batch} samples per step cannot be split evenly over the mesh's "
                f"{size} 'data' devices; choose a multiple of {size}"
            )


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding that keeps a full copy on every device of ``mesh``."""
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """The sharding that splits the leading (batch) axis over the mesh's ``"data"`` axis."""
    return NamedSharding(mesh, P(DATA_AXIS))


def place(tree: Any, sharding: NamedSharding) -> Any:
    """Put every array of ``tree`` on the devices of ``sharding``, unless it is already global.

    An array that spans devices of other processes (built from per-process shards) is left as
    it is: it already lives where it should.
    """

    def put(leaf):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            return leaf
        return jax.device_put(leaf, sharding)

    return jax.tree.map(put, tree)
