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
