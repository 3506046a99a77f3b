"""``python -m bench COMMAND [ARGS]``: the one front door to every command.

``python -m bench`` alone (or ``--help``) lists the commands; ``python -m bench COMMAND --help``
gives a command's own help. ``python -m bench.COMMAND ...`` (the specification's form, e.g.
``python -m bench.compare --datasets yahoo,yelp``) and ``python -m bench.cli.train ...`` work too.
"""

from __future__ import annotations

import importlib
import sys

from bench.core.errors import did_you_mean, run_cli

# command -> (module, what it does); the order is the order of a typical session
COMMANDS = {
    "download": ("bench.cli.download", "list and download the datasets"),
    "train": ("bench.cli.train", "train and evaluate one method on one dataset"),
    "sweep": ("bench.cli.sweep", "run an experiment (method x dataset x seed) on Ray Tune, resumably"),
    "compare": ("bench.cli.compare", "comparison tables (terminal, Markdown, CSV, LaTeX) with published numbers"),
    "report": ("bench.analysis.report", "the report: RQ1-RQ4 from the committed records"),
    "scale": ("bench.analysis.scale", "the scale study's section and figures"),
    "samples": ("bench.cli.samples", "the text a run's model produces: reconstructions, prior samples"),
    "diagnose": ("bench.cli.diagnose", "diagnostics: the lagging-encoder figure, feature dispersion"),
    "perf": ("bench.cli.perf", "speed benchmarks, measured side by side"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {about}" for name, (_, about) in COMMANDS.items()]
    return "usage: python -m bench COMMAND [ARGS]  (python -m bench COMMAND --help for its options)\n\ncommands:\n" + \
        "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] not in COMMANDS:
        print(f"error: unknown command '{argv[0]}'{did_you_mean(argv[0], COMMANDS)}; commands: {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return module.main(argv[1:])


def alias(command: str) -> None:
    """The body of ``bench/<command>.py``: ``python -m bench.<command> ARGS`` is ``python -m bench <command> ARGS``."""
    run_cli(lambda: main([command, *sys.argv[1:]]))


if __name__ == "__main__":
    run_cli(main)
