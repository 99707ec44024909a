"""One table of named problem setups, shared by the command line, the demo, the figures and the sweeps.

Each setup builds a problem from a seed (the instance seed of the random families;
Example 1 has none). Sizes are chosen to run in seconds on a laptop.

Examples:
    >>> make("network")
    DiagonalLinearNetwork(n_samples=10, n_features=20)
    >>> sorted(SETUPS)[:3]
    ['check-sensing', 'example1', 'network']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .._validation import as_int
from ..problems import DiagonalLinearNetwork, Example1, LinearRegression, MatrixSensing, Problem


@dataclass(frozen=True)
class Setup:
    """A named problem: ``build(seed)`` makes it; ``description`` says what it is.

    Examples:
        >>> setup = SETUPS["regression"]
        >>> setup.build(0).dim, setup.description
        (30, 'linear regression, n = 10, d = 30')
    """

    build: Callable[[int], Problem]
    description: str


SETUPS = {
    "example1": Setup(lambda seed: Example1(), "Example 1, f = (x1 x2 − 1)², d = 2"),
    "regression": Setup(lambda seed: LinearRegression.random(10, 30, rng=seed), "linear regression, n = 10, d = 30"),
    "network": Setup(
        lambda seed: DiagonalLinearNetwork.random(10, 20, sparsity=2, rng=seed),
        "diagonal linear network, n = 10, D = 20 (d = 40), 2-sparse truth",
    ),
    "network-128": Setup(
        lambda seed: DiagonalLinearNetwork.random(32, 64, sparsity=3, rng=seed),
        "diagonal linear network, n = 32, D = 64 (d = 128), 3-sparse truth (Figure 3 at CPU scale)",
    ),
    "sensing": Setup(
        lambda seed: MatrixSensing.random(10, 4, 1, 10, rng=seed),
        "matrix sensing, n = 10, r = 4, rank-1 truth, m = 10 measurements",
    ),
    "sensing-18": Setup(
        lambda seed: MatrixSensing.random(10, 4, 1, 18, rng=seed),
        "matrix sensing, n = 10, r = 4, rank-1 truth, m = 18 (below the 2nk = 20 that makes M* unique)",
    ),
    "check-sensing": Setup(
        lambda seed: MatrixSensing.random(6, 3, 1, 12, rng=seed),
        "matrix sensing, n = 6, r = 3, rank-1 truth, m = 12 (small enough for d×d×d tensors)",
    ),
}

#: The setups the command line's ``run`` offers.
RUN_CHOICES = ("example1", "regression", "network", "sensing")

#: ``check`` tests one instance of every family, at these points (``None``: a random one).
CHECKS = {"example1": [0.7, -1.3], "regression": None, "network": None, "check-sensing": None}


def make(name: str, seed: int = 0) -> Problem:
    """The problem of setup ``name`` with instance seed ``seed``.

    Examples:
        >>> make("example1"), make("network").dim          # d = 2D = 40
        (Example1(), 40)
        >>> import numpy as np
        >>> bool(np.array_equal(make("network", 1).y, make("network", 0).y))   # the seed picks the instance
        False
        >>> make("resnet")                                  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: name must be one of ['check-sensing', 'example1', ...], got 'resnet'
    """
    if name not in SETUPS:
        raise ValueError(f"name must be one of {sorted(SETUPS)}, got {name!r}")
    return SETUPS[name].build(as_int(seed, "seed", minimum=0))


def network_of_dim(dim: int, seed: int = 0) -> DiagonalLinearNetwork:
    """The rate sweeps' diagonal network: ``d = dim`` (a multiple of 8), ``n = d/8``, ``D = d/2``, 2-sparse truth.

    Examples:
        >>> network_of_dim(64)
        DiagonalLinearNetwork(n_samples=8, n_features=32)
    """
    dim = as_int(dim, "dim", minimum=16)
    if dim % 8:
        raise ValueError(f"dim must be a multiple of 8, got {dim}")
    return DiagonalLinearNetwork.random(dim // 8, dim // 2, sparsity=2, rng=seed)
