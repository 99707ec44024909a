"""The command line: ``python -m flatref demo`` and ``check``."""

import subprocess
import sys

import pytest
from helpers import assert_cli_refuses

from flatref.cli import main


def test_demo_escapes_with_rs_and_sa_but_not_gd(capsys, tmp_path):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "example1.png").stat().st_size > 10_000
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("Example 1", "diagonal"))]
    assert len(rows) == 6
    verdict = {(row[:26].strip(), row[26:34].strip()): row.split()[-4] for row in rows}  # "yes (ε = 0.02)"
    assert verdict[("Example 1", "GD")] == "no" and verdict[("diagonal network, d = 40", "GD")] == "no"
    assert verdict[("Example 1", "SA")] == "yes" and verdict[("diagonal network, d = 40", "SA")] == "yes"
    assert verdict[("Example 1", "RS")] == "yes"


def test_check_passes_for_every_family(capsys):
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert out.count(": passed") == 8 and "all derivative checks passed" in out


def test_unknown_commands_exit_with_code_2():
    with pytest.raises(SystemExit) as info:
        main(["nonsense"])
    assert info.value.code == 2


def test_module_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "flatref", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "demo" in done.stdout and "check" in done.stdout


def test_figures_quick_writes_every_png_and_csv(tmp_path, capsys):
    import csv

    assert main(["figures", "--quick", "--out", str(tmp_path)]) == 0
    for name in ("example1", "network", "batch", "sensing", "limit_flow"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
        assert (tmp_path / f"{name}.csv").stat().st_size > 100
    with open(tmp_path / "network.csv") as handle:
        rows = list(csv.DictReader(handle))
    last = {row["method"]: float(row["trace_gap"]) for row in rows}
    assert last["SA"] < 0.5 * last["GD"] and last["SAM (b=1)"] < last["SAM"]  # what panel (a) shows
    with open(tmp_path / "batch.csv") as handle:
        gap = {row["run"]: float(row["trace_gap"]) for row in csv.DictReader(handle)}
    assert gap["SA, b = 1"] < gap["SA, b = 4"] < gap["SA, b = 16"] < gap["SA, full batch"] < gap["RS"]
    with open(tmp_path / "sensing.csv") as handle:
        recovery = {row["method"]: float(row["recovery_error"]) for row in csv.DictReader(handle)}
    assert recovery["SA"] < 0.1 * recovery["GD"]  # flatter interpolants are closer to the low-rank truth


def test_run_summarizes_one_run_and_plots(capsys, tmp_path):
    assert main(["run", "--problem", "example1", "--method", "sa", "--steps", "3000", "--eta", "0.05",
                 "--rho", "0.3", "--plot", str(tmp_path / "run.png")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "completed after 3000 steps" in out and "tr̄(Φ): 9.111 → 2" in out
    assert (tmp_path / "run.png").stat().st_size > 5_000


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--problem", "nope", "--method", "sa"], "invalid choice: 'nope'"),
        (["run", "--problem", "network", "--method", "sa", "--rho", "-1"], "--rho: must be non-negative"),
        (["run", "--problem", "example1", "--method", "sa", "--batch-size", "3"], "batch_size must be between 1"),
        (["run", "--problem", "network", "--method", "rs", "--steps", "0"], "--steps: must be between 1 and"),
        (["run", "--problem", "example1", "--method", "gd", "--eps", "-1"], "--eps: must be positive and finite"),
        (["run", "--problem", "example1", "--method", "gd", "--eps", "nan"], "--eps: must be positive and finite"),
        (["run", "--problem", "example1", "--method", "gd", "--eps", "inf"], "--eps: must be positive and finite"),
        (["run", "--problem", "example1", "--method", "gd", "--seed", "-1"], "--seed: must be at least 0"),
        (["run", "--problem", "example1", "--method", "gd", "--steps", "99999999999999999999"], "--steps: must be"),
        (["run", "--problem", "example1", "--method", "gd", "--plot", "/nonexistent/dir/run.png"], "--plot: cannot"),
        (["run", "--problem", "example1", "--method", "gd", "--eta", "x"], "--eta: must be a number"),
        (["rates", "--jobs", "0"], "--jobs: must be at least 1"),
        (["demo", "--out", __file__], "--out: "),
    ],
)
def test_bad_arguments_get_one_line_on_stderr_and_exit_code_2_before_any_work(argv, message, capsys):
    assert_cli_refuses(argv, message, capsys)
