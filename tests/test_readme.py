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
