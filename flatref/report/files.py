"""Writing figures and tables: the Agg backend, byte-stable PNGs and CSVs.

PNGs are written without version metadata, so the same inputs give the same bytes.
"""

from __future__ import annotations

import csv
from pathlib import Path

#: One colour per method, used by every figure.
COLORS = {"GD": "#444444", "RS": "#1f77b4", "SA": "#d62728", "SAM": "#2ca02c", "LabelNoiseSGD": "#9467bd"}


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path) -> Path:
    """Save ``fig`` to ``path`` (folders made as needed) with no version metadata: byte-stable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, metadata={"Software": None})
    return path


def write_csv(path, header, rows) -> Path:
    """``header`` then ``rows`` as CSV at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_figure(fig, out_dir, name: str, header, rows) -> Path:
    """Save ``name.png`` and its data ``name.csv`` into ``out_dir``, close the figure; the PNG's path."""
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
