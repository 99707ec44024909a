"""The digits experiment at a small size: the two minimizers, their cache, the runs' CSV and the ``escape`` command."""

import csv
import dataclasses
import subprocess
import sys

import numpy as np
import pytest
from helpers import assert_cli_refuses

pytest.importorskip("sklearn")

from flatref.cli import main  # noqa: E402
from flatref.experiments import digits  # noqa: E402
from flatref.experiments.digits import COLUMNS, DigitsSetup, minimizers  # noqa: E402
from flatref.problems import TrainingLoss  # noqa: E402
from flatref.report.digits import escape  # noqa: E402

#: 64 training images, 32 hidden units (d = 2,410): both minimizers in about a second.
SMALL = DigitsSetup(n_train=64, hidden=32, noisy_iterations=500)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("digits-cache")


@pytest.fixture(scope="module")
def found(cache):
    return minimizers(SMALL, cache=cache)


def test_both_minimizers_interpolate_and_sit_on_the_minima(found):
    problem, _ = digits.digits_problem(SMALL)
    for m in found.values():
        assert m.train_acc == 1.0
        assert np.abs(problem.outputs(m.x) - problem.y).max() < 1e-10  # p(x) = y: on X*
        assert np.linalg.norm(problem.grad(m.x)) < 1e-10 and m.grad_norm < 1e-10
        assert m.trace == pytest.approx(problem.trace_hess(m.x))


def test_the_bad_minimizer_is_sharper_and_worse(found):
    # measured: clean 80.4 % test, trace 142.7; bad 47.8 %, trace 253.8
    clean, bad = found["clean"], found["bad"]
    assert bad.test_acc < clean.test_acc - 0.2
    assert bad.trace > 1.4 * clean.trace


def test_the_cache_loads_what_it_stored_and_keys_every_setting(found, cache, monkeypatch):
    path = digits.cache_path(SMALL, cache)
    assert path.exists() and list(cache.iterdir()) == [path]
    monkeypatch.setattr(digits, "clean_minimizer", lambda setup: pytest.fail("rebuilt instead of loaded"))
    again = minimizers(SMALL, cache=cache)
    for name in ("clean", "bad"):
        assert again[name].x.tobytes() == found[name].x.tobytes()
        assert again[name] == found[name]  # every score and the build time, exactly
    keys = {dataclasses.replace(SMALL, **{name: value}).key()
            for name, value in [("n_train", 65), ("hidden", 33), ("noise", 0.2), ("copies", 5),
                                ("noisy_iterations", 501), ("split_seed", 1), ("init_seed", 1), ("noise_seed", 2)]}  # fmt: skip
    assert len(keys) == 8 and SMALL.key() not in keys
    before = SMALL.key()
    monkeypatch.setattr(digits, "CONSTRUCTION_VERSION", digits.CONSTRUCTION_VERSION + 1)
    assert SMALL.key() != before  # a new construction never reads the old one's minimizers


def test_the_default_cache_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("FLATREF_CACHE", str(tmp_path))
    assert digits.default_cache() == tmp_path / "digits"
    monkeypatch.delenv("FLATREF_CACHE")
    assert digits.default_cache().parts[-3:] == (".cache", "flatref", "digits")


def test_at_one_hot_interpolants_jjt_is_singular_and_both_projections_land_close(found):
    """At an interpolant of one-hot labels with n > h + 1, 1ᵀW2 = 0 is forced (Σ_k p_ik = 1 for all i), so
    JJᵀ has n − h − 1 zero eigenvalues (e ⊗ 1_K, e ⊥ [S, 1]); the generic projection falls back to lstsq
    the fast one regularizes and lands within 1e-2 of the step from it."""
    problem, _ = digits.digits_problem(SMALL)
    W1, b1, W2, b2 = problem.unpack(found["bad"].x)
    assert np.abs(W2.sum(axis=0)).max() < 1e-10 and abs(b2.sum() - 1) < 1e-10
    eigenvalues = np.linalg.eigvalsh(problem.gauss_newton_gram(found["bad"].x))
    assert np.sum(eigenvalues < 1e-10 * eigenvalues[-1]) == SMALL.n_train - SMALL.hidden - 1
    x = found["bad"].x + 1e-3 * np.random.default_rng(0).standard_normal(problem.dim)
    with digits.one_blas_thread():  # lstsq on two busy cores took up to 28 s with two BLAS threads, 1 s with one
        fast = problem.project_to_minima(x)
        generic = TrainingLoss.project_to_minima(problem, x)
    assert np.abs(problem.outputs(fast) - problem.y).max() < 1e-11
    assert np.linalg.norm(fast - generic) < 1e-2 * np.linalg.norm(fast - x)


@pytest.fixture(scope="module")
def written(cache, tmp_path_factory, found):
    out = [tmp_path_factory.mktemp(f"out{k}") for k in range(2)]
    results = [escape(folder, setup=SMALL, steps=40, records=2, jobs=1, cache=cache) for folder in out]
    return out, results


def test_the_csv_has_the_columns_and_a_row_per_run_and_record(written):
    (out, _), (result, _) = written
    with open(out / "digits.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == COLUMNS == ("method", "batch_size", "step", "train_loss", "train_acc", "test_acc",
                                         "trace_phi")  # fmt: skip
    body = [dict(zip(COLUMNS, row)) for row in rows[1:]]
    assert [(r["method"], r["batch_size"], r["step"]) for r in body[:2]] == [("clean", "full", "0"), ("bad", "full", "0")]
    runs = {(r["method"], r["batch_size"]) for r in body[2:]}
    assert runs == {("gd", "full"), ("rs", "full"), ("sa", "1"), ("sa", "16"), ("sa", "full"), ("sam", "16"),
                    ("labelnoise", "16")}  # fmt: skip   (64 samples: SA at batch 64 is the full batch)
    assert len(body) == 2 + 3 * len(runs)  # steps 0, 20, 40
    for r in body:
        assert r["method"] in ("clean", "bad", "gd", "rs", "sa", "sam", "labelnoise")
        assert r["batch_size"] == "full" or int(r["batch_size"]) >= 1
        assert float(r["train_acc"]) == 1.0 and 0 < float(r["test_acc"]) < 1 and float(r["trace_phi"]) > 0
    assert (out / "digits.png").stat().st_size > 20_000
    assert -1 <= result.spearman <= 1


def test_same_seed_same_bytes(written):
    (first, second), _ = written
    assert (first / "digits.csv").read_bytes() == (second / "digits.csv").read_bytes()


def test_gd_stays_and_the_perturbed_methods_lower_the_trace(written):
    _, (result, _) = written
    last = {(r.method, r.batch_size): r for r in digits.final_rows(result.rows)}
    start = result.minimizers["bad"].trace
    assert last["gd", "full"].trace_phi == pytest.approx(start, rel=1e-9)
    assert last["rs", "full"].trace_phi == pytest.approx(start, rel=1e-3)
    assert last["sa", "1"].trace_phi < start - 0.5 and last["sam", "16"].trace_phi < start - 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["escape", "--jobs", "0"], "--jobs: must be at least 1"),
        (["escape", "--jobs", "two"], "--jobs: must be an integer"),
        (["escape", "--out", __file__], "--out: "),
        (["escape", "--cache", __file__], "--cache: "),
        (["escape", "--quick", "now"], "unrecognized arguments: now"),
        (["escape", "--steps", "10"], "unrecognized arguments"),
    ],
)
def test_bad_arguments_get_one_line_on_stderr_and_exit_code_2_before_any_work(argv, message, capsys, monkeypatch):
    monkeypatch.setattr("flatref.cli.escape", lambda *a, **k: pytest.fail("ran despite a bad argument"))
    assert_cli_refuses(argv, message, capsys)


def test_without_scikit_learn_the_command_names_the_extra(capsys, monkeypatch, tmp_path):
    from flatref.errors import MissingExtraError

    def missing():
        raise MissingExtraError("the digits data set needs scikit-learn: pip install 'flatref[data]'", name="sklearn")

    monkeypatch.setattr("flatref.cli.import_sklearn_digits", missing)
    monkeypatch.setattr("flatref.cli.escape", lambda *a, **k: pytest.fail("ran without scikit-learn"))
    assert main(["escape", "--out", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "pip install 'flatref[data]'" in captured.err and len(captured.err.strip().splitlines()) == 1
    assert captured.out == ""


@pytest.mark.slow
def test_escape_quick_meets_the_issue_s_bars(tmp_path):
    """Issue 14's judged numbers, from ``python -m flatref escape --quick`` (about a minute with the cache)."""
    done = subprocess.run([sys.executable, "-m", "flatref", "escape", "--quick", "--out", str(tmp_path), "--jobs", "2"],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    with open(tmp_path / "digits.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    first = {(r["method"], r["batch_size"]): r for r in reversed(rows)}
    last = {(r["method"], r["batch_size"]): r for r in rows}
    bad, clean = last["bad", "full"], last["clean", "full"]
    assert float(bad["train_acc"]) == 1.0 and float(bad["test_acc"]) <= float(clean["test_acc"]) - 0.15

    def change(key, column):
        return float(last[key][column]) - float(first[key][column])

    start = float(bad["trace_phi"])
    assert abs(change(("gd", "full"), "trace_phi")) < 1e-3 * start
    assert abs(change(("rs", "full"), "trace_phi")) < 1e-2 * start
    assert change(("sa", "1"), "trace_phi") <= -0.15 * start and change(("sa", "1"), "test_acc") >= 0.05
    assert float(last["sa", "1"]["trace_phi"]) < float(last["sa", "64"]["trace_phi"])
    assert float(last["sa", "1"]["test_acc"]) > float(last["sa", "64"]["test_acc"])
    from scipy.stats import spearmanr

    runs = [r for key, r in last.items() if key[0] not in ("clean", "bad")]
    assert spearmanr([float(r["trace_phi"]) for r in runs], [float(r["test_acc"]) for r in runs]).statistic <= -0.8
