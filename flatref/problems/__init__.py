"""Loss families with exact derivatives to third order (docs/theory.md §5).

``Problem`` and ``TrainingLoss`` (the paper's Setting 1) are the interfaces; each
family lives in its own module.
"""

from .base import Problem, SquaredLoss, TrainingLoss
from .diagonal_network import DiagonalLinearNetwork
from .example1 import Example1
from .linear_regression import LinearRegression
from .matrix_sensing import MatrixSensing
from .two_layer import TwoLayerNetwork

__all__ = [
    "Problem",
    "TrainingLoss",
    "SquaredLoss",
    "Example1",
    "LinearRegression",
    "DiagonalLinearNetwork",
    "MatrixSensing",
    "TwoLayerNetwork",
]
