"""Datasets as NumPy arrays: loaders, a bundled real dataset, splits, standardisation, sharding.

Everything here runs on the host, before training: a loader returns a :class:`Dataset` of
``x: float32 (n, d)`` (images flattened) and ``y``, either ``int64`` class labels ``0..C-1``
(classification) or ``float32`` targets (regression). :func:`split` cuts it into seeded,
stratified train / validation / test parts; :func:`fit_standardizer` learns the
per-feature mean and standard deviation on the training part only; :func:`shard_for_process`
gives each host of a multi-host run its equal share of the rows.

No loader reads, inflates or allocates more than ``max_bytes`` (default :data:`MAX_BYTES`,
4 GiB) before saying so in a ``ValueError`` that names the file: gzip data is inflated in
chunks, and the sizes that ``.npz`` and IDX headers declare are checked before any array is
allocated.

Example:
    >>> from fungrad import data
    >>> digits = data.load("digits")
    >>> parts = data.split(digits.x, digits.y, seed=0, validation=0.1, test=0.2)
    >>> standardize = data.fit_standardizer(parts.x_train)
    >>> x_train = standardize(parts.x_train)
    >>> x_train.shape, digits.n_classes
    ((1257, 64), 10)
"""

from fungrad.data.bundled import BUNDLED, load_digits
from fungrad.data.dataset import DataFileNotFoundError, Dataset
from fungrad.data.dataset import PathLike as PathLike
from fungrad.data.files import MAX_BYTES
from fungrad.data.idx import load_idx
from fungrad.data.load import load
from fungrad.data.load import load_rows as load_rows
from fungrad.data.load import table_options as table_options
from fungrad.data.npz import load_npz
from fungrad.data.preprocessing import Standardizer, fit_standardizer, one_hot
from fungrad.data.schema import TableSchema
from fungrad.data.split import Split, shard_for_process, split
from fungrad.data.table import load_csv
from fungrad.data.table import training_levels as training_levels

__all__ = [
    "Dataset",
    "DataFileNotFoundError",
    "Split",
    "TableSchema",
    "Standardizer",
    "BUNDLED",
    "MAX_BYTES",
    "load",
    "load_digits",
    "load_npz",
    "load_csv",
    "load_idx",
    "split",
    "fit_standardizer",
    "one_hot",
    "shard_for_process",
]
