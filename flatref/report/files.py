"""Writing figures and tables: the Agg backend, byte-stable PNGs and CSVs.

PNGs are written without version metadata, so the same inputs give the same bytes.
"""

from __future__ import annotations

import csv
from pathlib import Path

#: One colour per method, used by every figure.
COLORS = {"GD": "#444444", "RS": "#1f77b4", "SA": "#d62728", "SAM": "#2ca02c", "LabelNoiseSGD": "#9467bd"}


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend.

    Examples:
        >>> pyplot().get_backend().lower()
        'agg'
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path) -> Path:
    """Save ``fig`` to ``path`` (folders made as needed) with no version metadata: byte-stable.

    Examples:
        >>> import tempfile
        >>> plt = pyplot()
        >>> fig = plt.figure(figsize=(2, 2))
        >>> _ = fig.gca().plot([0, 1], [1, 0])
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     first = save_png(fig, Path(directory) / "a" / "plot.png").read_bytes()
        ...     second = save_png(fig, Path(directory) / "b" / "plot.png").read_bytes()
        >>> first[:4] == b"\\x89PNG", first == second, b"Matplotlib version" in first   # the same bytes twice
        (True, True, False)
        >>> plt.close(fig)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, metadata={"Software": None})
    return path


def write_csv(path, header, rows) -> Path:
    """``header`` then ``rows`` as CSV at ``path``.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     path = write_csv(Path(directory) / "sub" / "t.csv", ["step", "f"], [[0, 1.5], [10, csv_value(None)]])
        ...     with open(path, newline="") as handle:
        ...         list(csv.reader(handle))
        [['step', 'f'], ['0', '1.5'], ['10', '']]
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_figure(fig, out_dir, name: str, header, rows) -> Path:
    """Save ``name.png`` and its data ``name.csv`` into ``out_dir``, close the figure; the PNG's path.

    Examples:
        >>> import tempfile
        >>> plt = pyplot()
        >>> fig = plt.figure(figsize=(2, 2))
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     png = write_figure(fig, directory, "demo", ["x"], [[1]])
        ...     png.name, sorted(p.name for p in Path(directory).iterdir())
        ('demo.png', ['demo.csv', 'demo.png'])
        >>> plt.fignum_exists(fig.number)                   # closed
        False
    """
    png = save_png(fig, Path(out_dir) / f"{name}.png")
    pyplot().close(fig)
    write_csv(Path(out_dir) / f"{name}.csv", header, rows)
    return png


def csv_value(value) -> str:
    """A CSV cell: empty for ``None``, six significant digits for floats.

    Examples:
        >>> csv_value(None), csv_value(0.1 + 0.2), csv_value(3)
        ('', '0.3', '3')
    """
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
