"""Comparison tables from run records, with published numbers beside them.

``python -m bench.compare --datasets yahoo_resplit,yelp_xu_resplit`` loads every finished
record for those datasets, aggregates over seeds (mean +- the half-width of a 95%
t-interval, with the number of seeds), and prints one table per dataset: NLL, KL, MI, AU,
PPL, training hours, the training-time ratio to the standard VAE on the same hardware (the
RQ3 speed claim), and each method's difference to the standard VAE with a 95% interval
(NLL: bootstrap over seeds and test sentences, paired by sentence; MI, AU: Welch; see
:mod:`bench.stats`). Rows
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

import numpy as np

from bench import records
from bench.errors import BenchError, run_cli
from bench.stats import Interval, mean_interval, paired_bootstrap_difference, welch_difference

BASELINES = Path(__file__).resolve().parent.parent / "baselines"
METRICS = ("nll", "kl", "mi", "au", "ppl")
# Which direction is better, for emphasis; KL is reported but has no "best".
BETTER = {"nll": "min", "ppl": "min", "mi": "max", "au": "max", "train_hours": "min"}
FORMATS = ("table", "md", "csv", "latex")
REFERENCE_LABEL = "vae"  # time ratios and differences are relative to the standard VAE
DIFFERENCE_METRICS = ("nll", "kl", "mi", "au")
REFINED_SUFFIX = " [SVI-refined q]"  # rows evaluated with the method's refined posterior


def load_records(results: Path, datasets: list[str], profile: str | None) -> pd.DataFrame:
    """One row per finished run: label, dataset, profile, seed, metrics, hours, hardware."""
    rows = []
    for record in records.finished_records(results, profile, datasets):
        label = record.get("label", record["method"])
        # A method with a test-time refinement of q(z|x) (SA-VAE's SVI) gets a second, labelled row.
        for suffix, key in (("", "test"), (REFINED_SUFFIX, "test_refined")):
            test = record["metrics"].get(key)
            if test is None:
                continue
            rows.append({"label": label + suffix, "dataset": record["dataset"],
                         "profile": record["profile"], "seed": record["seed"],
                         **{m: test.get(m) for m in METRICS}, "train_hours": record["timing"]["train_hours"],
                         "hardware": records.hardware_label(record), "iw_samples": test.get("iw_samples"),
                         "iw_sentences": test.get("iw_sentences"), "nll_per_sentence": test.get("nll_per_sentence")})
    return pd.DataFrame(rows)


def runs_of(frame: pd.DataFrame, dataset: str, label: str) -> pd.DataFrame:
    return frame[(frame["dataset"] == dataset) & (frame["label"] == label)]


def difference(frame: pd.DataFrame, dataset: str, label: str, reference: str, metric: str) -> Interval | None:
    """``label`` - ``reference`` on ``metric`` with a 95% interval, or None if either has no runs.

    NLL: paired bootstrap over seeds and test sentences when every run kept its per-sentence
    values for the same sentences; otherwise (and for KL, MI, AU) Welch's interval over seeds.
    """
    a, b = runs_of(frame, dataset, label), runs_of(frame, dataset, reference)
    if not len(a) or not len(b):
        return None
    if metric == "nll" and "nll_per_sentence" in frame:
        per_sentence = [*a["nll_per_sentence"], *b["nll_per_sentence"]]
        if all(isinstance(v, list) and v for v in per_sentence):
            if len({len(v) for v in per_sentence}) > 1:
                return None  # scored on different test sentences: no comparison
            return paired_bootstrap_difference(np.array(list(a["nll_per_sentence"])),
                                               np.array(list(b["nll_per_sentence"])))
    return welch_difference(a[metric].astype(float), b[metric].astype(float))


def aggregate(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, label): mean, std and 95% t-interval over seeds of each metric; n; the time
    ratio to the VAE; and the difference to the VAE with its 95% interval (``d_<metric>``)."""
    columns = [*METRICS, "train_hours"]
    rows = []
    for (dataset, label), runs in frame.groupby(["dataset", "label"], sort=False):
        row = {"dataset": dataset, "label": label, "n": len(runs), "iw_sentences": runs["iw_sentences"].max(),
               "hardware": ", ".join(sorted(set(runs["hardware"])))}
        for column in columns:
            values = runs[column].dropna().astype(float)
            interval = mean_interval(values) if len(values) else Interval(math.nan, math.nan, math.nan, 0)
            row.update({f"{column}_mean": interval.estimate, f"{column}_std": values.std(ddof=1) if len(values) > 1
                        else math.nan, f"{column}_low": interval.low, f"{column}_high": interval.high})
        for metric in DIFFERENCE_METRICS:
            change = difference(frame, dataset, label, REFERENCE_LABEL, metric) if label != REFERENCE_LABEL else None
            row.update({f"d_{metric}": change.estimate if change else math.nan,
                        f"d_{metric}_low": change.low if change else math.nan,
                        f"d_{metric}_high": change.high if change else math.nan})
        rows.append(row)
    table = pd.DataFrame(rows, columns=[
        "dataset", "label", "n", "iw_sentences", "hardware",
        *[f"{c}_{s}" for c in columns for s in ("mean", "std", "low", "high")],
        *[f"d_{m}{s}" for m in DIFFERENCE_METRICS for s in ("", "_low", "_high")]])
    ratios = []
    for _, row in table.iterrows():
        reference = table[(table["dataset"] == row["dataset"]) & (table["label"] == REFERENCE_LABEL)
                          & (table["hardware"] == row["hardware"])]
        ratios.append(row["train_hours_mean"] / reference["train_hours_mean"].iloc[0]
                      if len(reference) and reference["train_hours_mean"].iloc[0] > 0 else math.nan)
    table["time_ratio"] = ratios
    # the reference first, the language model next, then the methods by name
    order = table["label"].map(lambda l: (l != REFERENCE_LABEL, l != "lm", l))
    return table.iloc[sorted(range(len(table)), key=lambda i: (table["dataset"].iloc[i], order.iloc[i]))]


def load_published(datasets: list[str], include_unverified: bool) -> pd.DataFrame:
    rows = []
    for path in sorted(BASELINES.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for row in doc.get("rows", []):
            if row["dataset"] in datasets and (row["verified"] or include_unverified):
                rows.append({**row, "label": row.get("label") or row["published_name"], "baseline": path.stem,
                             "citation_key": doc["citation_key"], "paper": doc["paper"]})
    return pd.DataFrame(rows)


def fmt(mean, low=math.nan, high=math.nan, digits=2) -> str:
    """``mean ± half-width`` of the interval [low, high], or the mean alone without one."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    text = f"{mean:.{digits}f}"
    return text if math.isnan(low) or math.isnan(high) else f"{text} ± {(high - low) / 2:.{digits}f}"


def fmt_difference(row, metric: str, digits: int = 2) -> str:
    """``+0.52 [+0.21, +0.83]``: the difference to the VAE and its 95% interval."""
    estimate, low, high = row[f"d_{metric}"], row[f"d_{metric}_low"], row[f"d_{metric}_high"]
    if math.isnan(estimate):
        return ""
    if math.isnan(low):
        return f"{estimate:+.{digits}f} (n=1)"
    return f"{estimate:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def best_values(measured: pd.DataFrame) -> dict[str, float]:
    """The best mean of each metric; NLL and PPL only among rows scored on the most common test set size."""
    best = {}
    usual = measured["iw_sentences"].mode()
    same_sentences = measured[measured["iw_sentences"] == usual.iloc[0]] if len(usual) else measured
    for metric, direction in BETTER.items():
        values = (same_sentences if metric in ("nll", "ppl") else measured)[f"{metric}_mean"].dropna()
        if len(values) and values.max() > values.min():  # a tie everywhere has no best
            best[metric] = values.min() if direction == "min" else values.max()
    return best


HEADERS = ["method", "source", "n", "NLL", "ΔNLL vs VAE", "KL", "MI", "ΔMI vs VAE", "AU", "ΔAU vs VAE", "PPL",
           "train h", "time / VAE"]


def dataset_rows(dataset: str, measured: pd.DataFrame, published: pd.DataFrame, bold) -> tuple[list, list]:
    """Display rows for one dataset: measured ones, then published ones, then differences."""
    rows = []
    mine = measured[measured["dataset"] == dataset]
    best = best_values(mine)

    def cell(row, metric):
        digits = 3 if metric == "train_hours" else (1 if metric == "au" else 2)
        text = fmt(row[f"{metric}_mean"], row[f"{metric}_low"], row[f"{metric}_high"], digits)
        emphasise = metric in best and not math.isnan(row[f"{metric}_mean"]) and \
            math.isclose(row[f"{metric}_mean"], best[metric])
        return bold(text) if emphasise else text

    for _, row in mine.iterrows():
        rows.append([row["label"], "measured", int(row["n"]), cell(row, "nll"), fmt_difference(row, "nll"),
                     cell(row, "kl"), cell(row, "mi"), fmt_difference(row, "mi"), cell(row, "au"),
                     fmt_difference(row, "au", 1), cell(row, "ppl"), cell(row, "train_hours"),
                     fmt(row["time_ratio"])])
    theirs = published[published["dataset"] == dataset] if len(published) else published
    for _, row in theirs.iterrows():
        mark = "" if row["verified"] else " (unverified)"
        value = lambda m: fmt(row[m], digits=1 if m != "au" else 0)  # noqa: E731
        rows.append([row["label"], f"published {row['baseline']}{mark}", "", value("nll"), "", value("kl"),
                     value("mi"), "", value("au"), "", value("ppl"), fmt(row["time_hours"]),
                     fmt(row["time_relative"])])
        match = mine[mine["label"] == row["label"]]
        if len(match):
            ours = match.iloc[0]
            gap = lambda m: fmt(ours[f"{m}_mean"] - row[m]) if row[m] is not None else "-"  # noqa: E731
            rows.append([row["label"], "ours − published", "", gap("nll"), "", gap("kl"), gap("mi"), "", gap("au"),
                         "", gap("ppl"), "", ""])
    return HEADERS, rows


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
    latent_rows = mine[mine["label"] != "lm"]
    no_active_unit = (" NO METHOD KEEPS AN ACTIVE UNIT HERE (AU 0 in every run): at this scale every remedy "
                      "measured collapses, so the rows differ by optimisation noise only."
                      if len(latent_rows) and (latent_rows["au_mean"].fillna(0) == 0).all() else "")
    sentences = sorted(set(int(v) for v in mine["iw_sentences"].dropna())) if "iw_sentences" in mine else []
    scored = f" on {'/'.join(map(str, sentences))} test sentences" if sentences else ""
    return (f"{dataset}: {scale}; hardware {hardware}. NLL = importance-weighted test NLL (nats/sentence){scored}; "
            f"values are mean ± half-width of the 95% t-interval over n seeds (no ± with one seed); Δ = difference "
            f"to the standard VAE with its 95% interval (NLL: bootstrap over seeds and test sentences, paired by "
            f"sentence; MI, AU: Welch); an interval that excludes 0 is a difference distinguishable at 95%; "
            f"time / VAE = training time relative to the VAE on the same hardware; best measured value emphasised."
            + no_active_unit)


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
    measured = aggregate(frame) if len(frame) else aggregate(pd.DataFrame(columns=[
        "dataset", "label", "hardware", "iw_sentences", "nll_per_sentence", *METRICS, "train_hours"]))
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
