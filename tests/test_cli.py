"""The command line: ``python -m flatref demo`` and ``check``."""

import subprocess
import sys

import pytest

from flatref.__main__ import main


def test_demo_escapes_with_rs_and_sa_but_not_gd(capsys):
    assert main(["demo"]) == 0
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
