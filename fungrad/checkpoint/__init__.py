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

from fungrad.checkpoint.archive import FORMAT_VERSION
from fungrad.checkpoint.atomic import check_folder, remove_leftovers, write_atomically, write_text
from fungrad.checkpoint.errors import CheckpointError, CheckpointNotFoundError
from fungrad.checkpoint.restoring import Checkpoint, restore
from fungrad.checkpoint.saving import Best, save

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
