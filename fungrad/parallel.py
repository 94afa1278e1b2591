"""Data-parallel training and spread-out restarts through JAX's own sharding.

fungrad adds no communication of its own. Given a ``jax.sharding.Mesh``:

- with a ``"data"`` axis, the batch axis of every minibatch is sharded across that axis
  (``NamedSharding(mesh, P("data"))``) while parameters and optimizer state are replicated;
  the gradient is a sum over the batch, so XLA inserts the all-reduce;
- with a ``"runs"`` axis (:func:`fungrad.fit_restarts` only), the restarts are spread over
  the devices: each device trains ``runs / devices`` of them.

**Axis types.** A mesh's axes may be ``Auto`` (``jax.sharding.Mesh``'s default) or
``Explicit`` (``jax.make_mesh``'s default on current JAX, where sharding is part of an
array's type). Either is accepted. fungrad compiles its training program on the *Auto view*
of the mesh (:func:`auto_view`: the same devices and axis names, every axis ``Auto``): the
gradient engines and user models are unannotated code, and under ``Explicit`` axes every
contraction over the sharded batch (``x.T @ delta``) would have to name its output sharding.
The training runs with that view set as JAX's context mesh (:func:`mesh_context`, so a mesh
the caller set with ``jax.set_mesh`` does not interfere; the caller's callbacks run in the
caller's own context, :func:`in_caller_context`), and the results come back on the caller's
own mesh (:func:`on_mesh`): same devices, same layout, the caller's axis types.

On one host the training data are replicated on every device of the mesh (each device slices
its part of a minibatch locally). On several hosts, each process loads its own rows
(:func:`fungrad.data.shard_for_process`) and passes a global array built with
``jax.make_array_from_process_local_data``; fit then uses it as it is.
"""

from __future__ import annotations

import contextlib
from typing import Any

import jax
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
    "data_mesh",
    "check_mesh",
    "auto_view",
    "mesh_context",
    "in_caller_context",
    "on_mesh",
    "replicated",
    "batch_sharded",
    "place",
]

DATA_AXIS = "data"
RUNS_AXIS = "runs"


def data_mesh(devices: int | str | None = None) -> Mesh:
    """A 1-D mesh with a ``"data"`` axis over the first ``devices`` devices.

    Built by ``jax.make_mesh``, so its axis has JAX's default type (``Explicit``);
    :func:`fungrad.fit` takes either type.

    Args:
        devices: how many devices, or ``"all"``/``None`` for every device.

    Returns:
        The mesh.

    Raises:
        ValueError: if ``devices`` is not ``"all"`` or an integer in ``[1, device count]``.

    Example:
        >>> mesh = data_mesh(1)
        >>> mesh.axis_names, mesh.size
        (('data',), 1)
    """
    available = jax.devices()
    count = len(available) if devices in (None, "all") else devices
    if not isinstance(count, int) or not 1 <= count <= len(available):
        raise ValueError(
            f"devices: expected 'all' or an integer in [1, {len(available)}], got {devices!r}"
        )
    return jax.make_mesh((count,), (DATA_AXIS,), devices=available[:count])


def _check_is_mesh(mesh: Any) -> None:
    if not isinstance(mesh, Mesh):
        raise TypeError(
            "mesh: expected a jax.sharding.Mesh (e.g. jax.make_mesh((4,), ('data',))), "
            f"got {type(mesh).__name__}"
        )


def check_mesh(mesh: Any, *, batch: int, axes: tuple[str, ...] = (DATA_AXIS,)) -> None:
    """Raise a clear error unless ``mesh`` is a ``Mesh`` with one of ``axes`` fitting ``batch``.

    ``batch`` is the number of samples per step (the minibatch, or all samples for full-batch
    GD); it must be divisible by the size of the ``"data"`` axis so every device gets the same
    share. A last partial minibatch is padded and masked to the full size, so only the
    minibatch size matters, not the number of samples. The axes may be of any type.

    Raises:
        TypeError: if ``mesh`` is not a ``jax.sharding.Mesh``.
        ValueError: if it has none of ``axes``, or ``batch`` does not split over ``"data"``.
    """
    _check_is_mesh(mesh)
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


def auto_view(mesh: Mesh) -> Mesh:
    """``mesh`` with every axis ``Auto``: the same devices and names, compiler-chosen sharding.

    A mesh whose axes are all ``Auto`` already is returned as it is, so nothing changes for
    it.

    Raises:
        TypeError: if ``mesh`` is not a ``jax.sharding.Mesh``.

    Example:
        >>> import jax
        >>> from jax.sharding import AxisType
        >>> mesh = jax.make_mesh((1,), ("data",), axis_types=(AxisType.Explicit,))
        >>> auto_view(mesh).axis_types
        (Auto,)
    """
    _check_is_mesh(mesh)
    if all(t == AxisType.Auto for t in mesh.axis_types):
        return mesh
    return Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * len(mesh.axis_names))


def mesh_context(mesh: Mesh | None):
    """A context in which ``mesh`` is JAX's current mesh (``jax.set_mesh``); none for None.

    Inside ``jit``, JAX checks every array's mesh against the context mesh; training under its
    own mesh keeps a mesh the caller set (``jax.set_mesh(explicit_mesh)``) from clashing with
    the Auto view the program is compiled on.
    """
    if mesh is None:
        return contextlib.nullcontext()
    return jax.set_mesh(mesh)


def in_caller_context(function: Any) -> Any:
    """``function``, run under the mesh context current now, wherever it is called later.

    Training runs under :func:`mesh_context` of the Auto view; a callback of the caller's
    (``callback=``, a ``checkpoint`` writer) goes back to the caller's own context, so its JAX
    code may use arrays on the caller's (Explicit) mesh. Anything not callable is returned as
    it is.
    """
    if not callable(function):
        return function
    caller = jax.sharding.get_mesh()
    caller = None if caller.empty else caller

    def call(*args, **kwargs):
        with jax.set_mesh(caller):
            return function(*args, **kwargs)

    return call


def on_mesh(tree: Any, mesh: Mesh) -> Any:
    """``tree`` with its arrays on a mesh of other axis types moved onto ``mesh``.

    Moves arrays between a mesh and its :func:`auto_view`: an array sharded over a mesh with
    the same devices and axis names as ``mesh`` keeps its partition spec and its layout, only
    the mesh its sharding names (and so the axis types) changes. Every other leaf (arrays on
    ``mesh`` already or on other devices, NumPy arrays, numbers, strings) is left as it is.
    """

    def move(leaf):
        sharding = getattr(leaf, "sharding", None)
        if (
            not isinstance(sharding, NamedSharding)
            or not isinstance(sharding.mesh, Mesh)
            or sharding.mesh == mesh
            or auto_view(sharding.mesh) != auto_view(mesh)
        ):
            return leaf
        return jax.device_put(leaf, NamedSharding(mesh, sharding.spec))

    return jax.tree.map(move, tree)


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding that keeps a full copy on every device of ``mesh``."""
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """The sharding that splits the leading (batch) axis over the mesh's ``"data"`` axis."""
    return NamedSharding(mesh, P(DATA_AXIS))


def place(tree: Any, sharding: NamedSharding) -> Any:
    """Put every array of ``tree`` on the devices of ``sharding``, unless it is already global.

    An array that spans devices of other processes (built from per-process shards) keeps its
    layout: it already lives where it should. Built on a mesh of the same devices and axis
    names with other axis types (the caller's Explicit mesh), it is moved to ``sharding``'s
    mesh with the same partition spec.
    """

    def put(leaf):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            return on_mesh(leaf, sharding.mesh)
        return jax.device_put(leaf, sharding)

    return jax.tree.map(put, tree)
