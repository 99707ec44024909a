"""flatref: a NumPy reference implementation of flat-minima optimization.

Ahn, Jadbabaie & Sra, *How to Escape Sharp Minima with Random Perturbations*,
ICML 2024 (arXiv:2305.15659). The mathematics is in ``docs/theory.md``.

The core (this namespace) never imports the layers above it:
:mod:`flatref.experiments` (named setups, recipes, sweeps), :mod:`flatref.report`
(figures, tables, files) and :mod:`flatref.cli`.
"""

from . import problems, testing, theory
from .algorithms import GD, RS, SA, SAM, LabelNoiseSGD
from .driver import Trajectory, run
from .errors import (
    CertificateError,
    ConvergenceError,
    FlatrefError,
    LimitMapError,
    MissingExtraError,
    NonFiniteError,
    StatusError,
)
from .flatness import (
    FlatnessPath,
    FlatnessReport,
    TraceCurvature,
    flatness_along,
    flatness_report,
    flattest_trace,
    grad_tr_bar,
    metric_at_minimum,
    stationarity_metric,
    tr_bar,
    trace_curvature,
)
from .flow import LimitPoint, limit_jacobian, limit_map
from .geometry import normal_basis, proj_out, project_tangent, tangent_projector
from .slow_flow import SlowFlow, limit_flow
from .problems import (
    DiagonalLinearNetwork,
    Example1,
    LinearRegression,
    MatrixSensing,
    Problem,
    TrainingLoss,
    TwoLayerNetwork,
)
from .status import Status

__version__ = "0.2.0"

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
    "Status",
    "FlatrefError",
    "ConvergenceError",
    "NonFiniteError",
    "StatusError",
    "LimitMapError",
    "CertificateError",
    "MissingExtraError",
    "limit_map",
    "LimitPoint",
    "limit_jacobian",
    "limit_flow",
    "SlowFlow",
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
    "trace_curvature",
    "TraceCurvature",
    "Problem",
    "TrainingLoss",
    "Example1",
    "LinearRegression",
    "DiagonalLinearNetwork",
    "MatrixSensing",
    "TwoLayerNetwork",
]
