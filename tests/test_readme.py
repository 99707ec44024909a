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
    header = next(line for line in quoted.splitlines() if line.startswith("| problem"))
    assert all(row.count("|") == header.count("|") for row in rows), "a row of another table in the README's copy"
    table = (README.parent / "figures" / "rates.md").read_text(encoding="utf-8").splitlines()
    for row in rows:
        assert row in table, f"README row not in figures/rates.md (rerun python -m flatref rates): {row}"


FIGURES = README.parent / "figures"


def _committed_rates():
    """The committed runs of ``rates.csv`` and what :mod:`flatref.experiments.stats` fits to them."""
    from flatref.experiments.stats import fits, speedup
    from flatref.report.jobs import read_rates_csv

    rows = read_rates_csv(FIGURES / "rates.csv")
    return rows, fits(rows), speedup(rows)


def test_rates_md_is_what_the_committed_csv_gives():
    """figures/rates.md is the markdown of the fits of figures/rates.csv: no number in it is edited by hand."""
    from flatref.experiments.sweeps import FULL
    from flatref.report.tables import markdown

    rows, fitted, ratio = _committed_rates()
    assert markdown(FULL, rows, fitted, ratio) == (FIGURES / "rates.md").read_text(encoding="utf-8")


def test_every_committed_exponent_moves_less_than_its_interval_when_one_size_or_instance_is_left_out():
    from flatref.experiments.stats import per_size_fits, speedup

    rows, fitted, ratio = _committed_rates()
    checked = 0
    for f in fitted + list(per_size_fits(rows).values()):  # the main table and the per-size one
        for name, (value, half) in f.exponents.items():
            if half is None or f.left_out.get(name) is None:
                continue
            change, what = f.left_out[name]
            assert change < half, f"{f.problem}, {f.regime}, {f.method}, {f.event}: leaving {what} out moves " \
                                  f"the {name} exponent {value:+.2f} by {change:.2f}, more than its ±{half:.2f}"
            checked += 1
    assert checked >= 12 + 16
    # the speed-up's d exponent, refitted without each size and each instance
    network = [r for r in rows if r.problem == "network"]
    subsets = [[r for r in network if r.dim != d] for d in ratio.dims]
    subsets += [[r for r in network if r.instance != k] for k in {r.instance for r in network}]
    for rest in subsets:
        assert abs(speedup(rest).exponent[0] - ratio.exponent[0]) < ratio.exponent[1]


def _rates_prose() -> str:
    """The README's section on Table 1, without the table it copies (checked row by row above)."""
    text = README.read_text(encoding="utf-8").split("## Table 1 in numbers")[1].split("\n## ")[0]
    before, rest = text.split("<!-- rates:begin -->")
    return " ".join((before + rest.split("<!-- rates:end -->")[1]).split())


def test_every_number_in_the_readme_rates_section_is_in_rates_md():
    """Each decimal (with its sign and ± interval), percentage and count of runs the README states about the
    rates appears in figures/rates.md."""
    table = (FIGURES / "rates.md").read_text(encoding="utf-8")
    prose = _rates_prose()
    numbers = re.findall(r"[−+]?\d+\.\d+(?: ± \d+\.\d+)?|\d+ %|\d+ / \d+", prose)
    assert len(numbers) >= 30
    missing = [n for n in numbers if n.replace("−", "-") not in table]
    assert not missing, f"README numbers not in figures/rates.md (rerun python -m flatref rates): {missing}"


def _signed(value) -> str:
    """A fitted exponent as the README writes it: "−2.44 ± 0.10" (a true minus sign), "+0.35 ± 0.39"."""
    from flatref.report.tables import format_exponent

    return format_exponent(value).replace("-", "−")


def test_readme_numbers_are_attached_to_the_right_fits():
    rows, fitted, ratio = _committed_rates()
    exponent = {(f.problem, f.regime, f.method, f.event): f.exponents for f in fitted}
    prose = _rates_prose()
    theory_rs, theory_sa = (exponent["network", "theory", m, "metric"] for m in ("RS", "SA"))
    assert f"RS needs `ε^({_signed(theory_rs['eps'])})` and SA `ε^({_signed(theory_sa['eps'])})`" in prose
    assert f"`{_signed(theory_rs['d'])}` for RS (Table 1: 0) and `{_signed(theory_sa['d'])}` for SA" in prose
    fixed = [exponent["network", "fixed", m, "metric"]["eps"] for m in ("RS", "SA")]
    assert f"`ε^({_signed(fixed[0])})` (RS) and `ε^({_signed(fixed[1])})` (SA)" in prose
    half = {(r, m): _signed(exponent["network", r, m, "half"]["d"]) for r in ("theory", "fixed") for m in ("RS", "SA")}
    assert (f"`d^({half['theory', 'RS']})` steps for RS and `d^({half['theory', 'SA']})` for SA under the theorems' "
            f"schedules, and in `d^({half['fixed', 'RS']})` and `d^({half['fixed', 'SA']})` at equal") in prose
    per_d = dict(zip(ratio.dims, ratio.ratio))
    assert (f"`d^({_signed(ratio.exponent)})`: `{per_d[16] / 16:.2f}·d` at `d = 16` and `{per_d[256] / 256:.2f}·d` "
            f"at `d = 256`") in prose
    theory = [r for r in rows if r.problem == "network" and r.regime == "theory" and r.steps_to_metric]
    runs = {m: sum(r.method == m for r in theory) for m in ("RS", "SA")}
    stationary = {m: sum(r.grad_norm_at_metric <= r.eps for r in theory if r.method == m) for m in ("RS", "SA")}
    flat = {m: sum(bool(r.definition3) for r in theory if r.method == m) for m in ("RS", "SA")}
    assert (f"held in {100 * stationary['RS'] / runs['RS']:.0f} % of RS's network runs and "
            f"{100 * stationary['SA'] / runs['SA']:.0f} % of SA's") in prose
    assert flat["RS"] == flat["SA"] and runs["RS"] == runs["SA"]
    assert f"{flat['RS']} / {runs['RS']} ({100 * flat['RS'] / runs['RS']:.0f} %) of the runs of each method" in prose


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
