"""The commands' jobs: compute with the experiments layer, then draw and write with this one."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..experiments import collapse, recipes
from ..experiments.stats import Speedup, fits, speedup
from ..experiments.sweeps import COLUMNS, FULL, QUICK, Grid, Row, cases, measure
from .figures import batch_figure, example1_figure, limit_flow_figure, network_figure, rates_figure, sensing_figure
from .files import csv_value, write_figure
from .progress import SweepProgress, log
from .tables import markdown

#: Each figure: its runs (a recipe), its drawing and its number of steps (a fifth with ``quick``).
FIGURES = {
    "example1": (recipes.example1_runs, example1_figure, 3000),
    "network": (recipes.network_runs, network_figure, 3000),
    "batch": (recipes.batch_runs, batch_figure, 2000),
    "sensing": (recipes.sensing_runs, sensing_figure, 3000),
    "limit_flow": (collapse.collapse_runs, limit_flow_figure, collapse.FULL_STEPS),
}


def draw(name: str, out_dir, *, quick: bool = False, jobs: int | None = None, progress: bool = False) -> Path:
    """Compute the runs of figure ``name`` (a fifth of the steps if ``quick``) and write its PNG and CSV."""
    runs, figure, steps = FIGURES[name]
    on_done = None
    if progress:
        log(f"{name}:")
        on_done = SweepProgress(None, lambda task: f"{task.setup}: {task.label}, {task.steps} steps")
    data = runs(steps=steps // 5 if quick else steps, jobs=jobs, on_done=on_done)
    return figure(data, out_dir)


def all_figures(out_dir, *, quick: bool = False, jobs: int | None = None, progress: bool = False) -> list[Path]:
    """Every figure, into ``out_dir``."""
    return [draw(name, out_dir, quick=quick, jobs=jobs, progress=progress) for name in FIGURES]


@dataclass(frozen=True)
class Rates:
    """What :func:`rates` measured and wrote."""

    grid: Grid
    rows: list = field(repr=False)
    fits: list = field(repr=False)
    speedup: Speedup
    table: str = field(repr=False)
    paths: tuple
    computed: int
    cached: int


def rates(out_dir="figures", *, quick: bool = False, jobs: int | None = None, cache=None,
          progress: bool = False) -> Rates:  # fmt: skip
    """Measure the grid (:data:`~flatref.experiments.sweeps.FULL`, or ``QUICK``), fit, and write
    ``rates.csv`` (every run), ``rates.md`` (the fitted exponents next to Table 1's) and
    ``rates.png`` into ``out_dir``. ``cache``: a folder that keeps finished runs (resumable)."""
    grid = QUICK if quick else FULL
    on_done = SweepProgress(len(cases(grid)), _describe) if progress else None
    sweep = measure(grid, jobs=jobs, cache=cache, on_done=on_done)
    rows = sweep.rows
    fitted, ratio = fits(rows), speedup(rows)
    table = markdown(grid, rows, fitted, ratio)
    out_dir = Path(out_dir)
    png = write_figure(rates_figure(grid, rows, ratio), out_dir, "rates", COLUMNS, csv_rows(rows))
    md = out_dir / "rates.md"
    md.write_text(table, encoding="utf-8")
    return Rates(grid, rows, fitted, ratio, table, (out_dir / "rates.csv", md, png), sweep.computed, sweep.cached)


def csv_rows(rows) -> list[list[str]]:
    """The cells of ``rates.csv``: one list per :class:`~flatref.experiments.sweeps.Row`, in :data:`COLUMNS` order."""
    return [[csv_value(getattr(row, c)) for c in COLUMNS] for row in rows]


#: How :func:`read_rates_csv` reads each column back: by the type :class:`~flatref.experiments.sweeps.Row` annotates
#: (``int | None`` is an ``int``, or ``None`` where the cell is empty).
_PARSERS = {"int": int, "float": float, "str": str, "bool": {"True": True, "False": False}.__getitem__}
_READ = {f.name: _PARSERS[f.type.split(" | ")[0]] for f in fields(Row)}


def read_rates_csv(path) -> list[Row]:
    """The :class:`~flatref.experiments.sweeps.Row` s of a ``rates.csv`` (floats to its six digits), to refit them.

    Examples:
        >>> import tempfile
        >>> from flatref.experiments.stats import _example_row
        >>> from .files import write_csv
        >>> row = _example_row(0, 0.01, 120, half=40)
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     path = write_csv(Path(directory) / "rates.csv", COLUMNS, csv_rows([row]))
        ...     read_rates_csv(path) == [row]
        True
    """
    with open(path, newline="", encoding="utf-8") as handle:
        return [Row(**{name: None if row[name] == "" else _READ[name](row[name]) for name in COLUMNS})
                for row in csv.DictReader(handle)]  # fmt: skip


def _describe(case) -> str:
    eps = ",".join(f"{e:.3g}" for e in case.eps)
    return f"{case.problem} d={case.dim} {case.regime} {case.method} eps={eps} seed={case.seed}"
