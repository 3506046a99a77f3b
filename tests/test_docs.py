"""The front page and docs/: every relative link resolves, every command shown parses."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+://", target) or target.startswith("#"):
            continue
        assert (page.parent / target.split("#")[0]).exists(), f"{page.name}: {target}"


def test_the_readme_is_a_front_page():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


def shown_commands(text: str) -> list[list[str]]:
    """The `python -m bench ...` and `./run_all.sh` commands of a page's code blocks, continuation
    lines joined, environment assignments and comments dropped."""
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line.split(" #")[0].split(" &")[0], comments=True)
            words = [w for w in words if not re.match(r"^[A-Z_]+=", w)]
            if words[:1] == ["taskset"]:  # taskset -c N COMMAND
                words = words[3:]
            if "-m" in words and words[words.index("-m") + 1].startswith("bench"):
                commands.append(words[words.index("-m") + 1:])
            elif words and words[0] == "./run_all.sh":
                commands.append(words)
    return commands


def test_every_command_the_readme_shows_parses():
    """Each command's module exists and every option it passes is one its --help lists."""
    for words in shown_commands((ROOT / "README.md").read_text()):
        if words[0] == "./run_all.sh":
            command = ["./run_all.sh", "--help"]
        elif words[0] == "bench":
            command = [sys.executable, "-m", "bench", words[1], "--help"]
        else:
            command = [sys.executable, "-m", words[0], "--help"]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (words, result.stderr)
        for option in (w.split("=")[0] for w in words if w.startswith("--")):
            assert option in result.stdout, (words, option)
