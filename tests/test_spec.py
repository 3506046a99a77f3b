"""The project specification's commands, run as it writes them (a contract: never renamed)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import COMMANDS

ROOT = Path(__file__).resolve().parent.parent


def run(command, cwd=ROOT, timeout=300):
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_run_all_help_works_verbatim():
    result = run(["./run_all.sh", "--help"])
    assert result.returncode == 0 and "--experiment" in result.stdout


def test_compare_with_the_specifications_module_path_works_verbatim():
    """`python -m bench.compare --datasets yahoo,yelp` (here with --published-only: no records needed)."""
    result = run([sys.executable, "-m", "bench.compare", "--datasets", "yahoo,yelp", "--published-only"])
    assert result.returncode == 0, result.stderr
    assert "published he2019_submission" in result.stdout and result.stdout.startswith("yahoo:")


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_front_door_command_has_its_bench_dot_alias(command):
    result = run([sys.executable, "-m", f"bench.{command}", "--help"])
    assert result.returncode == 0 and f"python -m bench {command}" in result.stdout, result.stderr


def test_a_latex_table_from_committed_records_is_written_and_compiles(tmp_path):
    """The real-text table from the committed records, as LaTeX; compiled where pdflatex exists."""
    result = run([sys.executable, "-m", "bench.compare", "--datasets", "ptb", "--results", "results/real_text",
                  "--profile", "cpu_text", "--point", "ptb5k", "--format", "latex", "--out", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    tex = (tmp_path / "comparison.tex").read_text()
    assert r"\begin{tabular}" in tex and "pooling" in tex and "†" not in tex
    if not shutil.which("pdflatex"):
        pytest.skip("pdflatex not installed: the table is written, not compiled")
    (tmp_path / "doc.tex").write_text("\\documentclass{article}\\usepackage{booktabs}\\begin{document}\n"
                                      "\\input{comparison}\n\\end{document}\n")
    build = run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path, timeout=120)
    assert build.returncode == 0, build.stdout[-2000:]
