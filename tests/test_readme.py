"""Every ```python block of README.md runs, in order, in one namespace."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_snippets_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert blocks, "README.md has no python snippets"
    namespace = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    assert "True" in out  # the sparse-recovery snippet prints np.allclose(...) == True
    assert "derivative check of Example1(): passed" in out
    assert "saddle" in out and "FlatnessReport(is_flat=False, status=converged" in out
    assert "completed [1. 1.]" in out


def test_readme_rates_rows_are_those_of_the_committed_table():
    """The Table-1 rows quoted in the README are verbatim rows of figures/rates.md."""
    text = README.read_text(encoding="utf-8")
    quoted = text.split("<!-- rates:begin -->")[1].split("<!-- rates:end -->")[0]
    rows = [line for line in quoted.splitlines() if line.startswith(("| example1", "| network"))]
    assert len(rows) >= 6
    table = (README.parent / "figures" / "rates.md").read_text(encoding="utf-8").splitlines()
    for row in rows:
        assert row in table, f"README row not in figures/rates.md (rerun python -m flatref rates): {row}"


def _table_rows(section_title):
    """The rows of the markdown table under ``## section_title`` in figures/rates.md, as lists of cells."""
    text = (README.parent / "figures" / "rates.md").read_text(encoding="utf-8")
    section = text.split(f"## {section_title}")[1].split("\n## ")[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| ") and line.split("|")[1].strip().isdigit()]  # fmt: skip


def _readme_number(value: str) -> str:
    """A table's "-0.80 ± 0.11" as the README writes it: "−0.80 ± 0.11" (a true minus sign)."""
    return value.replace("-", "−").replace("+", "")


def test_readme_prose_numbers_are_those_of_the_committed_table():
    text = " ".join(README.read_text(encoding="utf-8").split())
    per_size = {int(row[0]): row[1:] for row in _table_rows("The flat event's ε exponent at each network size")}
    rs_theory, sa_theory, rs_fixed, sa_fixed = per_size[16]
    assert f"RS {_readme_number(rs_fixed)}, SA {_readme_number(sa_fixed)}" in text
    assert f"{_readme_number(rs_theory)} for RS (bound −3) and {_readme_number(sa_theory)} for SA" in text
    assert f"`−2 − {rs_fixed.split()[0][1:]}` and `−1 − {sa_fixed.split()[0][1:]}` here" in text
    speedup = {int(row[0]): row for row in _table_rows("RS against SA at equal η′, ρ")}
    assert f"`{speedup[16][4]}·d` at `d = 16` and `{speedup[256][4]}·d` at `d = 256`" in text
    table = (README.parent / "figures" / "rates.md").read_text(encoding="utf-8")
    exponent = table.split("ratio ∝ d^(")[1].split(")")[0]
    assert f"`d^({exponent.lstrip('+')})`" in text


def test_readme_noise_floor_is_the_median_of_the_committed_runs():
    import csv
    import statistics

    with open(README.parent / "figures" / "rates.csv") as handle:
        chosen = ("network", "SA", "theory")
        rows = [r for r in csv.DictReader(handle)
                if (r["problem"], r["method"], r["regime"]) == chosen and r["steps_to_flat"] not in ("", "0")]
    median = statistics.median(float(r["grad_norm_at_flat"]) / float(r["eps"]) for r in rows)
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert f"the median `‖∇f(x_t)‖` is {median:.1f} ε for SA on the networks under the theorems' schedules" in text


#: The README's labels of the digits runs, keyed as in figures/digits.csv (method, batch_size).
DIGITS_ROWS = {
    "clean minimizer": ("clean", "full"), "bad minimizer (the start)": ("bad", "full"), "GD": ("gd", "full"),
    "RS": ("rs", "full"), "SA, b = 1": ("sa", "1"), "SA, b = 16": ("sa", "16"), "SA, b = 64": ("sa", "64"),
    "SA, full batch": ("sa", "full"), "SAM, b = 16": ("sam", "16"), "label noise, b = 16": ("labelnoise", "16"),
}  # fmt: skip


def test_readme_digits_rows_are_those_of_the_committed_csv():
    """The trace and test accuracy quoted for each digits run are its last row in figures/digits.csv."""
    import csv

    last = {}
    with open(README.parent / "figures" / "digits.csv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            last[row["method"], row["batch_size"]] = row
    quoted = README.read_text(encoding="utf-8").split("<!-- digits:begin -->")[1].split("<!-- digits:end -->")[0]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in quoted.splitlines() if line.startswith("| ")]
    rows = [row for row in rows if row[0] in DIGITS_ROWS]
    assert len(rows) == len(DIGITS_ROWS)
    for label, trace, accuracy, *_ in rows:
        row = last[DIGITS_ROWS[label]]
        assert trace == f"{float(row['trace_phi']):.1f}", label
        assert accuracy == f"{100 * float(row['test_acc']):.1f} %", label
    # "Every run keeps 100 % training accuracy ... the Spearman correlation of trace and test accuracy is −1.00"
    assert all(float(row["train_acc"]) == 1.0 for row in last.values())
    from scipy.stats import spearmanr

    runs = [row for key, row in last.items() if key[0] not in ("clean", "bad")]
    rho = spearmanr([float(r["trace_phi"]) for r in runs], [float(r["test_acc"]) for r in runs]).statistic
    assert len(runs) == 8 and f"Spearman correlation of trace and test accuracy is {rho:.2f}".replace("-", "−") in \
        " ".join(README.read_text(encoding="utf-8").split())
