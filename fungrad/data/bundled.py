"""The datasets shipped inside the package, read through :mod:`importlib.resources`."""

from __future__ import annotations

from importlib import resources

import numpy as np

from fungrad.data.dataset import Dataset


def load_digits() -> Dataset:
    """The bundled UCI handwritten digits: 1797 8x8 images, pixels 0..16, 10 classes.

    "Optical Recognition of Handwritten Digits" by E. Alpaydin and C. Kaynak, UCI Machine
    Learning Repository (CC BY 4.0, https://doi.org/10.24432/C50P49), the copy distributed
    with scikit-learn. Pixel values are kept as they are (0..16, float32); standardise with
    :func:`fungrad.data.fit_standardizer`.

    Returns:
        A :class:`Dataset` with ``x`` float32 ``(1797, 64)`` and ``y`` int64 ``(1797,)``.

    Example:
        >>> load_digits().x.shape
        (1797, 64)
    """
    source = resources.files("fungrad").joinpath("datasets", "digits.npz")
    with source.open("rb") as file, np.load(file, allow_pickle=False) as arrays:
        x, y = arrays["x"], arrays["y"]
    return Dataset(x.astype(np.float32), y.astype(np.int64), "digits", 10, list(range(10)))


BUNDLED = {"digits": load_digits}
"""The datasets shipped with fungrad, by the name :func:`fungrad.data.load` knows them by."""
