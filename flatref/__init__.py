"""flatref: a NumPy reference implementation of flat-minima optimization.

Ahn, Jadbabaie & Sra, *How to Escape Sharp Minima with Random Perturbations*,
ICML 2024 (arXiv:2305.15659).
"""

from . import problems, testing, theory
from .algorithms import GD, RS, SA, SAM, LabelNoiseSGD, Trajectory, proj_out, run
from .errors import ConvergenceError, FlatrefError
from .flatness import (
    FlatnessPath,
    FlatnessReport,
    flatness_along,
    flatness_report,
    flattest_trace,
    grad_tr_bar,
    metric_at_minimum,
    stationarity_metric,
    tr_bar,
)
from .limit_map import (
    LimitMapError,
    LimitPoint,
    LimitStatus,
    limit_jacobian,
    limit_map,
    normal_basis,
    project_tangent,
    tangent_projector,
)
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
    "theory",
    "run",
    "Trajectory",
    "RS",
    "SA",
    "GD",
    "SAM",
    "LabelNoiseSGD",
    "proj_out",
    "FlatrefError",
    "ConvergenceError",
    "LimitMapError",
    "limit_map",
    "LimitPoint",
    "LimitStatus",
    "limit_jacobian",
    "tangent_projector",
    "project_tangent",
    "normal_basis",
    "tr_bar",
    "grad_tr_bar",
    "stationarity_metric",
    "metric_at_minimum",
    "flatness_report",
    "flatness_along",
    "FlatnessPath",
    "FlatnessReport",
    "flattest_trace",
    "Problem",
    "TrainingLoss",
    "Example1",
    "LinearRegression",
    "DiagonalLinearNetwork",
    "MatrixSensing",
]
