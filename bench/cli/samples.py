"""Print the text a run's model produces: reconstructions, prior samples, an interpolation.

``python -m bench samples RUN_DIR [RUN_DIR ...]`` reads each finished record's ``samples``
(written at the end of training by :mod:`bench.core.samples`: greedy decodings of the first
test sentences from the posterior mean and from one posterior sample, of z from the prior, and
along the line between two sentences' posterior means). A collapsed model decodes every input
to the same text.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.core import records
from bench.core.errors import BenchError, run_cli
from bench.core.samples import distinct_reconstructions


def render(record: dict) -> str:
    samples = record.get("samples")
    title = f"{record.get('label', record.get('method'))} on {record.get('dataset')}, seed {record.get('seed')}"
    if not samples:
        return f"{title}: no samples in this record (written before records kept them)\n"
    lines = [f"{title}: {distinct_reconstructions(samples)} different reconstructions of "
             f"{len(samples['reconstructions'])} sentences (1: the decoder ignores z)"]
    for item in samples["reconstructions"]:
        lines += [f"  input      {item['input']}", f"  mean   ->  {item['from_mean']}",
                  f"  sample ->  {item['from_sample']}", ""]
    lines += ["  prior samples:", *[f"    {text}" for text in samples["prior"]],
              "  interpolation (first sentence to second):", *[f"    {text}" for text in samples["interpolation"]]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench samples", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="a run's folder (or its record.json)")
    args = parser.parse_args(argv)
    for run in args.runs:
        path = run if run.name == records.RECORD_NAME else run / records.RECORD_NAME
        if not path.is_file():
            raise BenchError(f"{run}: no {records.RECORD_NAME} there; pass a finished run's folder, e.g. "
                             "results/cpu/synthetic/vae/seed0-<run id>")
        print(render(records.load_record(path)))
    return 0


if __name__ == "__main__":
    run_cli(main)
