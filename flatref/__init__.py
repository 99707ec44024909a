"""flatref: a NumPy reference implementation of flat-minima optimization.

Ahn, Jadbabaie & Sra, *How to Escape Sharp Minima with Random Perturbations*,
ICML 2024 (arXiv:2305.15659).
"""

from . import problems, testing
from .errors import ConvergenceError, FlatrefError
from .problems import (
    DiagonalLinearNetwork,
    Example1,
    LinearRegression,
    MatrixSensing,
    Problem,
    TrainingLoss,
)

__version__ = "0.1.0"

__all__ = [
    "problems",
    "testing",
    "FlatrefError",
    "ConvergenceError",
    "Problem",
    "TrainingLoss",
    "Example1",
    "LinearRegression",
    "DiagonalLinearNetwork",
    "MatrixSensing",
]
