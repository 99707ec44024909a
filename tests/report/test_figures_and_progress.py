"""Figures drawn from the recipes' data, and the progress printers (``flatref.report``)."""

from flatref import GD, run
from flatref.problems import Example1

EX1 = Example1()


def test_example1_figure_data_say_what_the_figure_shows(tmp_path):
    import csv

    import numpy as np

    from flatref.experiments.recipes import example1_runs
    from flatref.report.figures import example1_figure

    png = example1_figure(example1_runs(steps=600, jobs=1), tmp_path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(tmp_path / "example1.csv") as handle:
        rows = list(csv.DictReader(handle))
    last = {}
    for row in rows:
        last[row["method"]] = float(row["tr_bar_limit"])
    assert set(last) == {"GD", "RS", "SA", "SAM", "LabelNoiseSGD"}
    assert last["GD"] > 9.0  # GD stays at the sharp minimum: tr̄ = 9 + 1/9
    assert abs(last["SA"] - 2.0) < 1e-6 and last["SA"] < last["GD"]  # SA reaches the flat minimum
    assert np.isclose(float(rows[0]["x1"]), 3.0)
    png2 = example1_figure(example1_runs(steps=600, jobs=2), tmp_path / "again")
    assert png2.read_bytes() == png.read_bytes()  # byte-stable


def test_progress_is_a_callback_that_prints_to_stderr(capsys):
    from flatref.report.progress import RunProgress

    trajectory = run(EX1, GD(0.01), [2.0, 0.5], steps=20, callback=RunProgress(EX1, "GD", 20))
    err = capsys.readouterr().err
    assert "GD: step 20/20" in err and err.count("\n") == 10
    assert trajectory.status == "completed" and trajectory.success
