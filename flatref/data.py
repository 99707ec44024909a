"""Real data for the experiments: scikit-learn's handwritten digits, with a fixed, documented split.

Needs the optional extra ``flatref[data]`` (scikit-learn, whose 1,797 digits ship inside the package:
nothing is downloaded). Importing this module never fails; :func:`load_digits_split` without
scikit-learn raises :class:`~flatref.errors.MissingExtraError` naming the extra.

**The split.** A permutation of the 1,797 images drawn by ``numpy.random.default_rng(seed)``; its
first ``n_train`` images train, *all* the others test (1,541 with the default 256).

**The scaling.** Each image is 8 × 8 pixels with integer values 0 … 16. Pixels are divided by 16
(so they lie in ``[0, 1]``), then every one of the 64 features is centred by subtracting its mean
over the *training* images (the test images are shifted by the same training mean, so no test
information enters). No division by a standard deviation: some border pixels are constant zero
on the training set, and a per-feature scale would blow up the rare test images where they are not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._validation import as_int, frozen_copy
from .errors import MissingExtraError

#: The number of images in scikit-learn's digits, and of classes.
N_DIGITS = 1797
N_CLASSES = 10

#: The largest pixel value of the digits (4 × 4 blocks of a 32 × 32 bitmap, counted).
PIXEL_MAX = 16.0


@dataclass(frozen=True)
class DigitsSplit:
    """A train/test split of the digits (read-only arrays; see the module docstring for the split and scaling).

    Attributes:
        train_inputs: ``(n_train, 64)``, pixels ``/16`` minus the training mean.
        train_labels: ``(n_train,)`` integer classes 0 … 9.
        test_inputs: ``(1797 − n_train, 64)``, scaled with the training mean.
        test_labels: ``(1797 − n_train,)``.
        train_index, test_index: the positions of the images in scikit-learn's order.
        mean: the training mean subtracted (of the pixels ``/16``), shape ``(64,)``.
        seed: the seed of the permutation.
    """

    train_inputs: np.ndarray = field(repr=False)
    train_labels: np.ndarray = field(repr=False)
    test_inputs: np.ndarray = field(repr=False)
    test_labels: np.ndarray = field(repr=False)
    train_index: np.ndarray = field(repr=False)
    test_index: np.ndarray = field(repr=False)
    mean: np.ndarray = field(repr=False)
    seed: int

    @property
    def n_train(self) -> int:
        """The number of training images."""
        return int(self.train_labels.size)

    @property
    def n_test(self) -> int:
        """The number of test images."""
        return int(self.test_labels.size)


def import_sklearn_digits():
    """``sklearn.datasets.load_digits``, or a :class:`~flatref.errors.MissingExtraError` naming the ``data`` extra."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise MissingExtraError(
            "the digits data set needs scikit-learn: pip install 'flatref[data]'", name="sklearn"
        ) from err
    return load_digits


def load_digits_split(n_train: int = 256, seed: int = 0) -> DigitsSplit:
    """scikit-learn's 1,797 handwritten digits: ``n_train`` images to train on, all the rest to test.

    Args:
        n_train: the training images, between 1 and 1,796 (at least one image is left to test).
        seed: the seed of the permutation (a non-negative integer); the same seed, the same split.

    Returns:
        A :class:`DigitsSplit`.

    Raises:
        MissingExtraError: without scikit-learn (``pip install 'flatref[data]'``).

    Examples:
        >>> digits = load_digits_split()                                 # doctest: +SKIP
        >>> digits.train_inputs.shape, digits.test_inputs.shape          # doctest: +SKIP
        ((256, 64), (1541, 64))
        >>> float(abs(digits.train_inputs.mean(axis=0)).max()) < 1e-15   # doctest: +SKIP
        True
    """
    n_train = as_int(n_train, "n_train", minimum=1, maximum=N_DIGITS - 1)
    seed = as_int(seed, "seed", minimum=0)
    images = import_sklearn_digits()()
    pixels = np.asarray(images.data, dtype=np.float64) / PIXEL_MAX
    labels = np.asarray(images.target, dtype=np.int64)
    order = np.random.default_rng(seed).permutation(labels.size)
    train, test = np.sort(order[:n_train]), np.sort(order[n_train:])
    mean = pixels[train].mean(axis=0)
    return DigitsSplit(
        train_inputs=frozen_copy(pixels[train] - mean), train_labels=frozen_copy(labels[train]),
        test_inputs=frozen_copy(pixels[test] - mean), test_labels=frozen_copy(labels[test]),
        train_index=frozen_copy(train), test_index=frozen_copy(test), mean=frozen_copy(mean), seed=seed,
    )  # fmt: skip


def one_hot(labels, K: int = N_CLASSES) -> np.ndarray:
    """The ``(n, K)`` float matrix with a 1 in column ``labels[i]`` of row ``i`` and zeros elsewhere.

    Examples:
        >>> one_hot([2, 0], K=3).tolist()
        [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
        >>> one_hot([3], K=3)
        Traceback (most recent call last):
        ...
        ValueError: labels must be integers in [0, 3), got values from 3 to 3
    """
    K = as_int(K, "K", minimum=1)
    arr = np.asarray(labels)
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise TypeError(f"labels must be a 1-D array of integer classes, got {labels!r:.80}")
    if arr.size and (arr.min() < 0 or arr.max() >= K):
        raise ValueError(f"labels must be integers in [0, {K}), got values from {arr.min()} to {arr.max()}")
    out = np.zeros((arr.size, K))
    out[np.arange(arr.size), arr.astype(np.int64)] = 1.0
    return out
