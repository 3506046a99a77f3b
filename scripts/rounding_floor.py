"""How far a rounding-level change alone moves each metric: the runs of one configuration and seed
(the same run id) found in two results folders, e.g. trained in float32 on hosts with different
vector instructions, whose arithmetic differs only in summation order and fused multiply-adds.
For each pair, d = A - B on test NLL, KL, MI and AU; per label, the mean of d, sd(d) and mean |d|.
A precision check (bfloat16 - float32) can be read against this floor: a change of precision
that moves a metric no more than another CPU's float32 kernels do adds no error of its own.

    python scripts/rounding_floor.py results/bf16_check results/encoder_objective --dataset ptb
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.core.results import read_runs  # noqa: E402

METRICS = ("nll", "kl", "mi", "au")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="results folder A")
    parser.add_argument("b", type=Path, help="results folder B (the difference is A - B)")
    parser.add_argument("--dataset", help="only this dataset")
    args = parser.parse_args(argv)
    sides = []
    for folder in (args.a, args.b):
        rows, found = read_runs(folder)
        capability = {(r["dataset"], r["run_id"]): r["environment"]["hardware"].get("cpu_capability") for r in found}
        rows = rows[(rows["evaluation"] == "test") & (rows["precision"] == "float32")]
        rows = rows.assign(cpu=[capability[key] for key in zip(rows["dataset"], rows["run_id"])])
        sides.append(rows[rows["dataset"] == args.dataset] if args.dataset else rows)
    pairs = sides[0].merge(sides[1], on=["dataset", "run_id"], suffixes=("_a", "_b"))
    if pairs.empty:
        print("no run (same dataset and run id, float32) is in both folders", file=sys.stderr)
        return 1
    print("| label | dataset | CPU A / B | seeds | " + " | ".join(
        f"{m}: mean d, sd(d), mean abs d" for m in METRICS) + " |")
    print("|---|---|---|---|" + "---|" * len(METRICS))
    for (label, dataset), group in pairs.groupby(["label_a", "dataset"]):
        cells = []
        for metric in METRICS:
            d = group[f"{metric}_a"].astype(float) - group[f"{metric}_b"].astype(float)
            cells.append(f"{d.mean():+.2f}, {d.std(ddof=1):.2f}, {d.abs().mean():.2f}")
        cpus = f"{group['cpu_a'].iloc[0]} / {group['cpu_b'].iloc[0]}"
        seeds = ",".join(str(s) for s in sorted(group["seed_a"]))
        print(f"| {label} | {dataset} | {cpus} | {seeds} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
