"""Comparison tables from run records, with published numbers beside them.

``python -m bench.compare --datasets yahoo_resplit,yelp_xu_resplit`` loads every finished
record for those datasets, aggregates over seeds (mean +- sample std, with the number of
seeds), and prints one table per dataset: NLL, KL, MI, AU, PPL, training hours and the
training-time ratio to the standard VAE on the same hardware (the RQ3 speed claim). Rows
marked ``published`` come from ``baselines/`` and are never mixed with measured ones; where a
method has both, the difference ours - published is shown. The profile is always stated,
so reduced-profile numbers are never read as paper-scale ones.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd
import yaml
from tabulate import tabulate

from bench import records
from bench.errors import BenchError, run_cli

BASELINES = Path(__file__).resolve().parent.parent / "baselines"
METRICS = ("nll", "kl", "mi", "au", "ppl")
# Which direction is better, for emphasis; KL is reported but has no "best".
BETTER = {"nll": "min", "ppl": "min", "mi": "max", "au": "max", "train_hours": "min"}
FORMATS = ("table", "md", "csv", "latex")
REFERENCE_LABEL = "vae"  # time ratios are relative to the standard VAE


def load_records(results: Path, datasets: list[str], profile: str | None) -> pd.DataFrame:
    """One row per finished run: label, dataset, profile, seed, metrics, hours, hardware."""
    rows = []
    for record in records.finished_records(results, profile, datasets):
        test = record["metrics"]["test"]
        rows.append({"label": record.get("label", record["method"]), "dataset": record["dataset"],
                     "profile": record["profile"], "seed": record["seed"],
                     **{m: test.get(m) for m in METRICS}, "train_hours": record["timing"]["train_hours"],
                     "hardware": records.hardware_label(record), "iw_samples": test.get("iw_samples")})
    return pd.DataFrame(rows)


def aggregate(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample std over seeds per (dataset, label), with n and the time ratio to the VAE."""
    columns = [*METRICS, "train_hours"]
    grouped = frame.groupby(["dataset", "label"], sort=False)
    table = grouped[columns].mean().add_suffix("_mean").join(grouped[columns].std(ddof=1).add_suffix("_std"))
    table["n"] = grouped.size()
    table["hardware"] = grouped["hardware"].agg(lambda h: ", ".join(sorted(set(h))))
    table = table.reset_index()
    ratios = []
    for _, row in table.iterrows():
        reference = table[(table["dataset"] == row["dataset"]) & (table["label"] == REFERENCE_LABEL)
                          & (table["hardware"] == row["hardware"])]
        ratios.append(row["train_hours_mean"] / reference["train_hours_mean"].iloc[0]
                      if len(reference) and reference["train_hours_mean"].iloc[0] > 0 else math.nan)
    table["time_ratio"] = ratios
    return table


def load_published(datasets: list[str], include_unverified: bool) -> pd.DataFrame:
    rows = []
    for path in sorted(BASELINES.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for row in doc.get("rows", []):
            if row["dataset"] in datasets and (row["verified"] or include_unverified):
                rows.append({**row, "label": row.get("label") or row["published_name"], "baseline": path.stem,
                             "citation_key": doc["citation_key"], "paper": doc["paper"]})
    return pd.DataFrame(rows)


def fmt(mean, std=math.nan, n=1, digits=2) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    text = f"{mean:.{digits}f}"
    return f"{text} ± {std:.{digits}f}" if n > 1 and not math.isnan(std) else text


def best_values(measured: pd.DataFrame) -> dict[str, float]:
    best = {}
    for metric, direction in BETTER.items():
        values = measured[f"{metric}_mean"].dropna()
        if len(values) and values.max() > values.min():  # a tie everywhere has no best
            best[metric] = values.min() if direction == "min" else values.max()
    return best


def dataset_rows(dataset: str, measured: pd.DataFrame, published: pd.DataFrame, bold) -> tuple[list, list]:
    """Display rows for one dataset: measured ones, then published ones, then differences."""
    headers = ["method", "source", "n", "NLL", "KL", "MI", "AU", "PPL", "train h", "time / VAE"]
    rows = []
    mine = measured[measured["dataset"] == dataset]
    best = best_values(mine)
    for _, row in mine.iterrows():
        cells = [row["label"], "measured", int(row["n"])]
        for metric in (*METRICS, "train_hours"):
            digits = 3 if metric == "train_hours" else (1 if metric == "au" else 2)
            text = fmt(row[f"{metric}_mean"], row[f"{metric}_std"], row["n"], digits)
            emphasise = metric in best and not math.isnan(row[f"{metric}_mean"]) and \
                math.isclose(row[f"{metric}_mean"], best[metric])
            cells.append(bold(text) if emphasise else text)
        cells.append(fmt(row["time_ratio"]))
        rows.append(cells)
    theirs = published[published["dataset"] == dataset] if len(published) else published
    for _, row in theirs.iterrows():
        mark = "" if row["verified"] else " (unverified)"
        cells = [row["label"], f"published {row['baseline']}{mark}", "",
                 *[fmt(row[m], digits=1 if m != "au" else 0) for m in METRICS],
                 fmt(row["time_hours"]), fmt(row["time_relative"])]
        rows.append(cells)
        match = mine[mine["label"] == row["label"]]
        if len(match):
            ours = match.iloc[0]
            rows.append([row["label"], "ours − published", "",
                         *[fmt(ours[f"{m}_mean"] - row[m]) if row[m] is not None else "-" for m in METRICS],
                         "", ""])
    return headers, rows


def render(dataset: str, headers, rows, style: str, caption: str) -> str:
    if style == "latex":
        return latex_table(headers, rows, caption, dataset)
    table = tabulate(rows, headers=headers, tablefmt="github" if style == "md" else "simple",
                     disable_numparse=True)
    return f"{caption}\n\n{table}\n" if style == "md" else f"{caption}\n{table}\n"


def latex_escape(text: str) -> str:
    return (str(text).replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("&", r"\&")
            .replace("%", r"\%").replace("#", r"\#").replace("±", r"$\pm$").replace("−", "$-$"))


def latex_table(headers, rows, caption: str, dataset: str) -> str:
    """A booktabs table; measured rows, a rule, then published rows."""
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             rf"\caption{{{latex_escape(caption)}}}", rf"\label{{tab:{dataset.replace('_', '-')}}}",
             r"\begin{tabular}{ll" + "r" * (len(headers) - 2) + "}", r"\toprule",
             " & ".join(latex_escape(h) for h in headers) + r" \\", r"\midrule"]
    previous_source = "measured" if rows and rows[0][1] == "measured" else "other"
    for row in rows:
        source = "measured" if row[1] == "measured" else "other"
        if source != previous_source:
            lines.append(r"\midrule")
            previous_source = source
        cells = [c[2:-2] if isinstance(c, str) and c.startswith("**") else c for c in row]
        cells = [rf"\textbf{{{latex_escape(c)}}}" if isinstance(o, str) and o.startswith("**") else latex_escape(c)
                 for c, o in zip(cells, row)]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def caption_for(dataset: str, measured: pd.DataFrame, profile: str | None) -> str:
    mine = measured[measured["dataset"] == dataset]
    hardware = ", ".join(sorted(set(mine["hardware"]))) if len(mine) else "none"
    scale = "paper-scale" if profile == "paper" else f"REDUCED '{profile}' profile, not comparable to published numbers"
    if not len(mine):
        scale = "no measured runs"
    return (f"{dataset}: {scale}; hardware {hardware}. NLL = importance-weighted test NLL (nats/sentence), "
            f"mean ± std over n seeds; time / VAE = training time relative to the standard VAE on the same hardware; "
            f"best measured value emphasised.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare", description=__doc__.split("\n\n")[0].replace("``", "`"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m bench.compare --datasets yahoo_resplit,yelp_xu_resplit\n"
               "  python -m bench.compare --datasets yahoo,yelp --format latex,md --out tables/\n"
               "  python -m bench.compare --datasets yahoo,yelp --published-only\n")
    parser.add_argument("--datasets", required=True, metavar="A,B")
    parser.add_argument("--methods", metavar="A,B", help="only these run labels (default: all)")
    parser.add_argument("--results", type=Path, default=records.DEFAULT_RESULTS, metavar="DIR")
    parser.add_argument("--profile", metavar="NAME", help="which profile's records (needed when several exist)")
    parser.add_argument("--format", default="table", metavar="F,G", help=f"any of {', '.join(FORMATS)}")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="write comparison.{txt,md,csv,tex} here; the terminal then shows only the table format")
    parser.add_argument("--published-only", action="store_true", help="show published rows even with no records")
    parser.add_argument("--include-unverified", action="store_true",
                        help="also show published numbers marked unverified (flagged as such)")
    args = parser.parse_args(argv)
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    if unknown := [f for f in formats if f not in FORMATS]:
        raise BenchError(f"unknown format '{unknown[0]}'; choose from {', '.join(FORMATS)}")
    frame = load_records(args.results, datasets, args.profile)
    if args.methods and len(frame):
        wanted = [m.strip() for m in args.methods.split(",")]
        if missing := sorted(set(wanted) - set(frame["label"])):
            raise BenchError(f"no finished records for method '{missing[0]}' on {', '.join(datasets)}; "
                             f"present: {', '.join(sorted(set(frame['label'])))}")
        frame = frame[frame["label"].isin(wanted)]
    if frame.empty and not args.published_only:
        raise BenchError(f"no finished records for {', '.join(datasets)} under {args.results}; run "
                         f"`python -m bench.sweep experiments/cpu.yaml` (or ./run_all.sh) first, or pass "
                         "--published-only to see the published numbers alone")
    profile = args.profile or (frame["profile"].iloc[0] if len(frame) else None)
    measured = aggregate(frame) if len(frame) else pd.DataFrame(
        columns=["dataset", "label", "n", "hardware", "time_ratio",
                 *[f"{m}_{s}" for m in (*METRICS, "train_hours") for s in ("mean", "std")]])
    published = load_published(datasets, args.include_unverified)
    outputs = {}
    for style in formats:
        if style == "csv":
            outputs["csv"] = pd.concat([measured.assign(source="measured", profile=profile),
                                        published.assign(source="published")], ignore_index=True).to_csv(index=False)
            continue
        bold = {"md": lambda t: f"**{t}**", "latex": lambda t: f"**{t}**"}.get(style, lambda t: f"{t} *")
        parts = []
        for dataset in datasets:
            headers, rows = dataset_rows(dataset, measured, published, bold)
            if not rows:
                parts.append(f"{dataset}: no measured runs and no published numbers\n")
                continue
            parts.append(render(dataset, headers, rows, style, caption_for(dataset, measured, profile)))
        outputs[style] = "\n".join(parts)
    for style, text in outputs.items():
        if not args.out or style == "table":  # with --out, files hold the rest
            print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        suffix = {"table": "txt", "md": "md", "csv": "csv", "latex": "tex"}
        for style, text in outputs.items():
            (args.out / f"comparison.{suffix[style]}").write_text(text)
        print(f"tables written to {args.out}/")
    return 0


if __name__ == "__main__":
    run_cli(main)
