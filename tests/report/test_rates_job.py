"""Table 1 in numbers end to end: ``python -m flatref rates --quick`` writes every run, the table and the figure."""

import csv

import numpy as np
import pytest

from flatref.cli import main
from flatref.experiments.sweeps import QUICK


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("rates")
    assert main(["rates", "--quick", "--out", str(out), "--cache", str(out / "cache")]) == 0
    with open(out / "rates.csv") as handle:
        rows = list(csv.DictReader(handle))
    return out, rows, (out / "rates.md").read_text()


def test_quick_rates_write_every_run_a_table_and_a_figure(quick):
    out, rows, table = quick
    n_eps_network, n_eps_example1 = len(QUICK.network_eps), len(QUICK.example1_eps)
    runs_per_size = 2 * QUICK.seeds * 2  # methods × seeds × (theory per ε + fixed per threshold)
    expected = runs_per_size * (n_eps_example1 + n_eps_network * len(QUICK.network_dims) * QUICK.instances)
    assert len(rows) == expected
    assert (out / "rates.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| network | theorems' schedules | SA | metric at Φ ≤ √ε |" in table and "Table 1" in table
    assert {row["status"] for row in rows} <= {"reached", "capped"}  # nothing diverged
    theory = [row for row in rows if row["regime"] == "theory"]
    assert all(float(row["eps0"]) == float(row["eps"]) and float(row["delta"]) == 0.5 for row in theory)  # the gate


def test_quick_rates_apply_theorem_2s_finish_before_reading_definition_3(quick):
    _, rows, table = quick
    reached = [row for row in rows if row["steps_to_metric"] not in ("", "0")]
    assert reached and all(row["finish_steps"] != "" for row in reached)
    # where the iterate already had ‖∇f‖ ≤ ε the finish takes no step, and where it did not it takes some
    for row in reached:
        assert (int(row["finish_steps"]) == 0) == (float(row["grad_norm_at_metric"]) <= float(row["eps"]))
    assert "## Definition 3 at the counted step and after Theorem 2's finish" in table


def test_quick_rates_speedup_of_sa_over_rs_grows_like_d(quick):
    _, _, table = quick
    lines = table.split("## RS against SA")[1].split("\n## ")[0].splitlines()
    ratios = {int(line.split("|")[1]): float(line.split("|")[4]) for line in lines if line.startswith("| ") and
              line.split("|")[1].strip().isdigit()}  # fmt: skip
    dims = sorted(ratios)
    assert dims == list(QUICK.network_dims)
    assert all(ratios[a] < ratios[b] for a, b in zip(dims, dims[1:]))  # grows with d
    for d in dims:
        assert 0.7 <= ratios[d] / d <= 2.0  # Lemma 4 against Lemma 2: about d
    exponent = float(table.split("ratio ∝ d^(")[1].split()[0])
    assert 0.7 <= exponent <= 1.5


def test_quick_rates_sa_beats_rs_under_the_theorems_schedules(quick):
    _, rows, _ = quick
    medians = {}
    for row in rows:
        if row["regime"] == "theory" and row["steps_to_metric"] not in ("", "0"):
            key = (row["problem"], row["dim"], row["eps"], row["method"])
            medians.setdefault(key, []).append(int(row["steps_to_metric"]))
    pairs = [(np.median(medians[k]), np.median(medians[k[:3] + ("SA",)])) for k in medians if k[3] == "RS"]
    assert len(pairs) >= 6 and all(sa < rs for rs, sa in pairs)
