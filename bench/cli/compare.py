"""Comparison tables from run records, with published numbers beside them.

``python -m bench compare --datasets yahoo_resplit,yelp_xu_resplit`` loads every finished
record for those datasets, aggregates over seeds (mean +- the half-width of a 95%
t-interval, with the number of seeds), and prints one table per dataset: NLL, KL, MI, AU,
PPL, training hours, the training-time ratio to the standard VAE on the same hardware (the
RQ3 speed claim), and each method's difference to the standard VAE with a 95% interval
(Welch's interval over seeds, each seed's NLL a mean over the same test sentences; no
interval with one seed; see :mod:`bench.core.stats`). Rows
marked ``published`` come from ``baselines/`` and are never mixed with measured ones; where a
method has both, the difference ours - published is shown. The profile is always stated,
so reduced-profile numbers are never read as paper-scale ones.
"""

from __future__ import annotations

import argparse
import math
import re
import textwrap
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import yaml
from tabulate import tabulate

from bench.core import files, records
from bench.core import results as results_layer
from bench.core.data import DATASETS, SYNTHETIC
from bench.core.errors import BenchError, did_you_mean, run_cli
from bench.core.metric_specs import TEST_METRICS, TRAIN_HOURS, spec
from bench.core.stats import Interval, mean_interval, paired_difference, welch_difference

BASELINES = Path(__file__).resolve().parents[2] / "baselines"
METRICS = tuple(m.name for m in TEST_METRICS)
DIFFERENCE_METRICS = tuple(m.name for m in TEST_METRICS if m.vs_reference)
FORMATS = ("table", "md", "csv", "latex")
LAYOUTS = ("compact", "wide")
REFERENCE_LABEL = "vae"  # time ratios and differences are relative to the standard VAE
# Columns: "n", a metric (mean ± interval), "d_<metric>" (difference to the VAE), "time_ratio".
ALL_COLUMNS = ("n", "nll", "d_nll", "kl", "mi", "d_mi", "au", "d_au", "ppl", "train_hours", "time_ratio")
LATEX_COLUMNS = ("n", "nll", "d_nll", "kl", "mi", "au")  # fits a one-column article in the compact layout


def load_records(results: Path, datasets: list[str], profile: str | None) -> pd.DataFrame:
    """One row per finished run (and refined-posterior evaluation): :func:`bench.core.results.run_rows`."""
    return results_layer.run_rows(records.finished_records(results, profile, datasets))


def runs_of(frame: pd.DataFrame, dataset: str, label: str) -> pd.DataFrame:
    return frame[(frame["dataset"] == dataset) & (frame["label"] == label)]


def difference(frame: pd.DataFrame, dataset: str, label: str, reference: str, metric: str) -> Interval | None:
    """``label`` - ``reference`` on ``metric``, paired by seed: the 95% t-interval of the per-seed
    differences (:func:`bench.core.stats.paired_difference`; NaN bounds with fewer than 2 seeds in
    common), or None if either has no runs, their MI comes from different estimators, or, for
    NLL, the runs were scored on different test sentences. Descriptive: the verdicts (clean
    records, Holm over a stated family) are bench.analysis.verdicts'."""
    a, b = runs_of(frame, dataset, label), runs_of(frame, dataset, reference)
    if not len(a) or not len(b):
        return None
    if results_layer.incomparable(a, b, metric):
        return None
    test = paired_difference(results_layer.per_seed(a, label, metric), results_layer.per_seed(b, reference, metric))
    return None if test.n == 0 else test.interval


def time_ratio(frame: pd.DataFrame, dataset: str, label: str, reference: str) -> tuple[Interval | None, str]:
    """Training time ``label`` / ``reference`` with its 95% interval, and the condition it holds
    under (or why there is none).

    The ratio of geometric means over seeds, with Welch's interval on log training hours,
    exponentiated (NaN bounds with fewer than 2 seeds a side). Only between runs timed alike
    (:func:`bench.core.results.timing_problem`): under one recorded condition in which each run
    had its cores, on hosts of one speed; a time measured beside other work, or on a slower
    host, measures those too."""
    a, b = runs_of(frame, dataset, label), runs_of(frame, dataset, reference)
    if not len(a) or not len(b):
        return None, "no runs"
    both = pd.concat([a, b])
    problem = results_layer.timing_problem(both["timing_condition"], host_speeds(both))
    if problem:
        return None, problem
    condition = both["timing_condition"].iloc[0]
    gap = welch_difference(*(runs["train_hours"].astype(float).apply(math.log) for runs in (a, b)))
    return Interval(math.exp(gap.estimate), math.exp(gap.low), math.exp(gap.high), gap.n), condition


def host_speeds(runs: pd.DataFrame) -> pd.Series:
    """The runs' host speeds (:func:`bench.core.environment.host_speed`), NaN where not recorded."""
    return (runs["host_speed"] if "host_speed" in runs else pd.Series(math.nan, index=runs.index)).astype(float)


def aggregate(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, label): mean, std and 95% t-interval over seeds of each metric; n; the time
    ratio to the VAE; and the difference to the VAE with its 95% interval (``d_<metric>``)."""
    columns = [*METRICS, TRAIN_HOURS.name]
    rows = []
    for (dataset, label), runs in frame.groupby(["dataset", "label"], sort=False):
        row = {"dataset": dataset, "label": label, "n": len(runs), "iw_sentences": runs["iw_sentences"].max(),
               "mi_se": runs["mi_se"].max(), "mi_estimator": ", ".join(sorted(set(runs["mi_estimator"].dropna()))),
               "clean": bool(runs["clean"].astype(bool).all()),
               "uses_latent": bool(runs["uses_latent"].all()),
               "hardware": ", ".join(sorted(set(runs["hardware"]))),
               "timing_condition": runs["timing_condition"].iloc[0]
               if runs["timing_condition"].nunique(dropna=False) == 1 else None,
               # NaN where any run's host speed is unknown (min and max skip nothing)
               "host_speed_min": host_speeds(runs).min(skipna=False),
               "host_speed_max": host_speeds(runs).max(skipna=False)}
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
        "dataset", "label", "n", "iw_sentences", "mi_se", "mi_estimator", "clean", "uses_latent", "hardware",
        "timing_condition",
        "host_speed_min", "host_speed_max", *[f"{c}_{s}" for c in columns for s in ("mean", "std", "low", "high")],
        *[f"d_{m}{s}" for m in DIFFERENCE_METRICS for s in ("", "_low", "_high")]])
    ratios = [time_ratio(frame, dataset, label, REFERENCE_LABEL)[0] if label != REFERENCE_LABEL else None
              for dataset, label in zip(table["dataset"], table["label"])]
    for suffix, part in (("", "estimate"), ("_low", "low"), ("_high", "high")):
        table[f"time_ratio{suffix}"] = [getattr(r, part) if r else math.nan for r in ratios]
    # the reference first, models without a latent next, then the methods by name
    order = [(d, l != REFERENCE_LABEL, bool(z), l) for d, l, z in zip(table["dataset"], table["label"],
                                                                      table["uses_latent"])]
    return table.iloc[sorted(range(len(table)), key=order.__getitem__)]


def load_published(datasets: list[str], include_unverified: bool) -> pd.DataFrame:
    rows = []
    for path in sorted(BASELINES.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for row in doc.get("rows", []):
            if row["dataset"] in datasets and (row["verified"] or include_unverified):
                rows.append({**row, "label": row.get("label") or row["published_name"], "baseline": path.stem,
                             "citation_key": doc["citation_key"], "paper": doc["paper"], "bibtex": doc["bibtex"]})
    return pd.DataFrame(rows)


def bibliography(published: pd.DataFrame) -> str:
    """The BibTeX entries of every paper cited by the published rows (``comparison.bib``)."""
    if not len(published):
        return ""
    return "\n".join(dict.fromkeys(entry.strip() + "\n" for entry in published["bibtex"]))


class Cell(NamedTuple):
    """A table cell: ``main`` (a mean or a difference), ``detail`` (its ± half-width or 95%
    interval, '' without one), and whether it is the best value of its column."""

    main: str
    detail: str = ""
    best: bool = False

    def text(self) -> str:
        return f"{self.main} {self.detail}".strip()


EMPTY = Cell("")
MISSING = Cell("-")  # not applicable (a model without a latent) or not published


class TableRow(NamedTuple):
    label: str
    source: str  # "measured", "published <baseline>", or "ours − published"
    cells: list[Cell]
    citation: str | None = None  # BibTeX key of a published row


def mean_cell(mean, low=math.nan, high=math.nan, digits=2, best=False) -> Cell:
    """``mean`` and ``± half-width`` of the interval [low, high] (no detail without one)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return MISSING
    detail = "" if math.isnan(low) or math.isnan(high) else f"± {(high - low) / 2:.{digits}f}"
    return Cell(f"{mean:.{digits}f}", detail, best)


def interval_cell(estimate, low, high, digits: int, sign: str = "+") -> Cell:
    """``+0.52`` and ``[+0.21, +0.83]``: an estimate and its 95% interval, ``(n=1)`` without one."""
    if math.isnan(estimate):
        return EMPTY
    detail = "(n=1)" if math.isnan(low) else f"[{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]"
    return Cell(f"{estimate:{sign}.{digits}f}", detail)


def difference_cell(row, metric: str) -> Cell:
    """The difference to the VAE and its 95% interval; '-' for a latent metric of a model without one."""
    if spec(metric).latent_only and not row["uses_latent"]:
        return MISSING
    return interval_cell(row[f"d_{metric}"], row[f"d_{metric}_low"], row[f"d_{metric}_high"], spec(metric).digits)


def best_values(measured: pd.DataFrame) -> dict[str, float]:
    """The best mean of each metric that has a direction: latent-only metrics among models with a
    latent; NLL and PPL only among rows scored on the most common test set size; training time
    only when every row was timed under one comparable condition (:func:`time_ratio`)."""
    best = {}
    usual = measured["iw_sentences"].mode()
    same_sentences = measured[measured["iw_sentences"] == usual.iloc[0]] if len(usual) else measured
    speeds = pd.concat([measured["host_speed_min"], measured["host_speed_max"]])
    comparable_times = results_layer.timing_problem(measured["timing_condition"], speeds) is None
    for metric in (*TEST_METRICS, *([TRAIN_HOURS] if comparable_times else [])):
        if metric.better is None:
            continue
        rows = same_sentences if metric.name in ("nll", "ppl") else measured
        values = rows[rows["uses_latent"].astype(bool)] if metric.latent_only else rows
        values = values[f"{metric.name}_mean"].dropna()
        if len(values) and values.max() > values.min():  # a tie everywhere has no best
            best[metric.name] = values.min() if metric.better == "min" else values.max()
    return best


def header(column: str) -> str:
    if column.startswith("d_"):
        return f"Δ{spec(column[2:]).header} vs VAE"
    return {"n": "n", "time_ratio": "time / VAE"}.get(column) or spec(column).header


def measured_cell(row, column: str, best: dict[str, float]) -> Cell:
    if column == "n":
        return Cell(str(int(row["n"])))
    if column == "time_ratio":
        if row["label"] == REFERENCE_LABEL:
            return Cell("1.00")
        return interval_cell(row["time_ratio"], row["time_ratio_low"], row["time_ratio_high"], 2, sign="")
    if column.startswith("d_"):
        return difference_cell(row, column[2:])
    metric = spec(column)
    if metric.latent_only and not row["uses_latent"]:
        return MISSING  # a language model has no KL, MI or AU to report
    mean = row[f"{column}_mean"]
    emphasise = column in best and not math.isnan(mean) and math.isclose(mean, best[column])
    return mean_cell(mean, row[f"{column}_low"], row[f"{column}_high"], metric.digits, emphasise)


def published_cell(row, column: str) -> Cell:
    """A published number as the paper gives it (no seeds, no interval, no difference to the VAE)."""
    if column == "n" or column.startswith("d_"):
        return EMPTY
    value = row.get({"train_hours": "time_hours", "time_ratio": "time_relative"}.get(column, column))
    return mean_cell(value, digits=0 if column == "au" else 1 if column in METRICS else 2)


def gap_cell(ours, published, column: str) -> Cell:
    """Our mean minus the published number, for the test metrics only."""
    if column not in METRICS:
        return EMPTY
    return MISSING if published[column] is None else mean_cell(ours[f"{column}_mean"] - published[column])


def dataset_rows(dataset: str, measured: pd.DataFrame, published: pd.DataFrame,
                 columns=ALL_COLUMNS) -> list[TableRow]:
    """One dataset's rows: measured ones, then published ones, each followed by
    ``ours − published`` where we have the same method."""
    mine = measured[measured["dataset"] == dataset]
    best = best_values(mine)
    rows = [TableRow(row["label"] + ("" if row["clean"] else " †"), "measured",
                     [measured_cell(row, c, best) for c in columns]) for _, row in mine.iterrows()]
    theirs = published[published["dataset"] == dataset] if len(published) else published
    for _, row in theirs.iterrows():
        mark = "" if row["verified"] else " (unverified)"
        rows.append(TableRow(row["label"], f"published {row['baseline']}{mark}",
                             [published_cell(row, c) for c in columns], row["citation_key"]))
        match = mine[mine["label"] == row["label"]]
        if len(match):
            rows.append(TableRow(row["label"], "ours − published", [gap_cell(match.iloc[0], row, c) for c in columns]))
    return rows


def render_text(rows, columns, style: str, caption: str) -> str:
    """Terminal (``table``) or Markdown (``md``, best values in bold) table under its caption."""
    mark = (lambda t: f"**{t}**") if style == "md" else (lambda t: f"{t} *")
    body = [[row.label, row.source, *[mark(c.text()) if c.best else c.text() for c in row.cells]] for row in rows]
    table = tabulate(body, headers=["method", "source", *map(header, columns)],
                     tablefmt="github" if style == "md" else "simple", disable_numparse=True)
    if style == "md":
        return f"{caption}\n\n{table}\n"
    # the terminal: one short line (dataset, scale, hardware) before the table, the rest once after it
    short, _, rest = caption.partition(". ")
    return f"{short}.\n{table}\n" + (textwrap.fill(rest, width=110) + "\n" if rest else "")


def latex_typography(text: str) -> str:
    """What pandas' LaTeX escaping leaves as Unicode or as typewriter quotes, for pdflatex: ±, Δ
    and − as math, a minus sign (not a hyphen) before a number, and opening quotes that TeX
    renders as opening ones. Applied to text already escaped."""
    text = str(text).replace("±", r"$\pm$").replace("−", "$-$").replace("Δ", r"$\Delta$").replace("†", r"\dag{}")
    text = re.sub(r"(?<![\w$.])-(?=\d)", "$-$", text)  # -0.31, [-1.2, ...]; not t-interval, 2-core
    text = re.sub(r'"([^"]*)"', r"``\1''", text)
    return re.sub(r"(?<!\w)'([^']+?)'(?!\w)", r"`\1'", text)  # 'cpu' -> `cpu'; the VAE's apostrophe stays


def latex_escape(text: str) -> str:
    """The caption's escaping: Styler escapes cells and headers (``escape="latex"``) but not the
    caption, so its special characters are escaped here."""
    text = (str(text).replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("&", r"\&")
            .replace("%", r"\%").replace("#", r"\#"))
    return latex_typography(text)


def latex_cell(escaped: str, layout: str) -> str:
    """A cell's LaTeX from its escaped ``value`` or ``value\\ndetail`` text. Compact: the detail
    as a smaller second line, under the value, which keeps the row's baseline (a top-aligned
    tabular); wide: one line."""
    main, _, detail = latex_typography(escaped).partition("\n")
    if not detail:
        return main
    if layout == "wide":
        return f"{main} {detail}"
    return rf"\begin{{tabular}}[t]{{@{{}}r@{{}}}}{main}\\\scriptsize {detail}\end{{tabular}}"


def render_latex(rows, columns, caption: str, dataset: str, layout: str = "compact") -> str:
    """A booktabs table built by pandas' Styler: measured rows, a rule, then published rows,
    each citing its source (BibTeX in ``baselines/``; their ``ours − published`` rows are left
    to the text formats); best values bold.
    ``wide`` puts each interval on the same line and uses ``table*`` (both columns of a
    two-column paper); ``compact`` stacks it under the value and keeps only the published
    rows of methods measured here, to fit one text column."""
    measured_labels = {row.label.removesuffix(" †") for row in rows if row.source == "measured"}
    rows = [row for row in rows if row.source == "measured" or row.citation is not None
            and (layout == "wide" or not measured_labels or row.label in measured_labels)]
    # compact: the published rows of methods run here (all of them when nothing was run here)
    # labels as a column, not the index: two papers may publish the same method (a repeated label)
    frame = pd.DataFrame([[row.label, *[f"{c.main}\n{c.detail}" if c.detail else c.main for c in row.cells]]
                          for row in rows], columns=["", *[header(c).replace(" vs VAE", "") for c in columns]])
    bold = pd.DataFrame([["", *["font-weight: bold;" if c.best else "" for c in row.cells]] for row in rows],
                        columns=frame.columns)
    styler = (frame.style.apply(lambda _: bold, axis=None).hide(axis="index")
              .format(lambda text: latex_cell(text, layout), escape="latex")
              .format_index(latex_typography, escape="latex", axis=1))
    measured = sum(row.source == "measured" for row in rows)
    for index, row in enumerate(rows):
        # Styler has no rule between groups of rows (concat adds none): the first published row
        # starts with one, which booktabs accepts at the start of a row
        rule = "\\midrule\n" if index == measured > 0 else ""
        cite = "" if row.citation is None else rf" \cite{{{row.citation}}}"
        styler.format(lambda text, rule=rule, cite=cite: rule + latex_typography(text) + cite,
                      subset=([index], [""]), escape="latex")
    # table styles become commands before the tabular, in this order (the label first, as a
    # table style, so that it follows the caption); wide: one-line cells across both columns of
    # a two-column page, a size smaller to fit its width
    commands = [("label", f"{{tab:{dataset.replace('_', '-')}}}"),
                *([("footnotesize", ""), ("setlength", r"{\tabcolsep}{4pt}")] if layout == "wide" else [("small", "")])]
    styler.set_table_styles([{"selector": command, "props": f":{arguments};"} for command, arguments in commands])
    return styler.to_latex(column_format="l" + "r" * len(columns), hrules=True, convert_css=True, position="t",
                           position_float="centering", environment="table*" if layout == "wide" else "table",
                           caption=latex_escape(caption))


def caption_for(dataset: str, measured: pd.DataFrame, profile: str | None, point: str | None = None) -> str:
    mine = measured[measured["dataset"] == dataset]
    hardware = ", ".join(sorted(set(mine["hardware"]))) if len(mine) else "none"
    scale = "paper-scale" if profile == "paper" else f"REDUCED '{profile}' profile, not comparable to published numbers"
    if not len(mine):
        scale = "no measured runs"
    latent_rows = mine[mine["uses_latent"].astype(bool)]
    no_active_unit = (" NO METHOD KEEPS AN ACTIVE UNIT HERE (AU 0 in every run): at this scale every remedy "
                      "measured collapses, so the rows differ by optimisation noise only."
                      if len(latent_rows) and (latent_rows["au_mean"].fillna(0) == 0).all() else "")
    estimators = set(", ".join(latent_rows["mi_estimator"].dropna()).split(", ")) - {""} if len(latent_rows) else set()
    se = latent_rows["mi_se"].max() if len(latent_rows) else math.nan
    floor = ""
    if results_layer.AGGREGATE in estimators:
        floor += (f" MI = I_q(x; z) over the whole test split (aggregate posterior over every test sentence); its "
                  f"standard error here is at most {se:.3f} nats." if results_layer.BATCH not in estimators else
                  " MI: rows mix the whole-split estimate and He et al.'s per-batch one (older records); ΔMI only "
                  "between rows of one estimator.")
    elif results_layer.BATCH in estimators and se > 0:
        floor += (f" MI = He et al.'s per-batch estimate (records made before the whole-split one; capped at log batch "
                  f"size); noise floor ±{2 * se:.2f}: twice its standard deviation for a model that carries no "
                  "information; an MI within it is noise, not information.")
    if len(mine) and not mine["clean"].astype(bool).all():
        floor += " †: records made from uncommitted code: shown, but no verdict rests on them."
    sentences = sorted(set(int(v) for v in mine["iw_sentences"].dropna())) if "iw_sentences" in mine else []
    scored = f" on {'/'.join(map(str, sentences))} test sentences" if sentences else ""
    if point:
        scale += f", scale-study point {point}"
    return (f"{dataset}: {scale}; hardware {hardware}. NLL = importance-weighted test NLL (nats/sentence){scored}; "
            f"values are mean ± half-width of the 95% t-interval over n seeds (no ± with one seed); Δ = difference "
            f"to the standard VAE, paired by seed, with the 95% t-interval of the per-seed differences (runs at one "
            f"seed share data order and evaluation draws; no interval with one seed; uncorrected: the report's "
            f"verdicts apply Holm over a stated family); "
            f"time / VAE = training time relative to the VAE (ratio of geometric means over seeds, Welch's 95% interval "
            f"on log hours), only between runs timed under one recorded condition: same hardware and trials at once, "
            f"each CPU run with at least {results_layer.OWN_CORES_SHARE:.0%} of its cores' time, host speeds within "
            f"{results_layer.HOST_SPEED_TOLERANCE}x of each other where recorded ('-' otherwise); best measured value emphasised; "
            f"'-': not applicable (a language model has no latent) or not published." + floor + no_active_unit)


def render(style: str, datasets, measured, published, profile, columns, layout: str, point: str | None = None) -> str:
    """Every dataset's table in one format (``csv``: one file for all)."""
    if style == "csv":
        return pd.concat([measured.assign(source="measured", profile=profile),
                          published.drop(columns=["bibtex"], errors="ignore").assign(source="published")],
                         ignore_index=True).to_csv(index=False)
    parts = []
    for dataset in datasets:
        for index, (sentences, group) in enumerate(test_set_groups(measured[measured["dataset"] == dataset])):
            if index > 0:  # nothing relative to the VAE of the first table
                group = group.assign(**{c: math.nan for c in group.columns if c.startswith(("d_", "time_ratio"))})
            rows = dataset_rows(dataset, group, published if index == 0 else published.iloc[0:0], columns)
            if not rows:
                parts.append(f"{dataset}: no measured runs and no published numbers\n")
                continue
            caption = caption_for(dataset, group, profile, point) + (
                "" if index == 0 else " A separate table: these runs were scored on other test sentences than the "
                "first table's, so they share no column, best value, difference or time ratio with it.")
            name = dataset if index == 0 else f"{dataset}-{sentences}"
            parts.append(render_latex(rows, columns, caption, name, layout) if style == "latex"
                         else render_text(rows, columns, style, caption))
    return "\n".join(parts)


def test_set_groups(rows: pd.DataFrame) -> list[tuple[int, pd.DataFrame]]:
    """Rows split by the test sentences their IW NLL was scored on (the first N of the split):
    the most common set first, so that the main table holds most runs. No rows: one empty group."""
    if not len(rows):
        return [(0, rows)]
    sizes = rows["iw_sentences"].fillna(-1).astype(int)
    order = sizes.value_counts().index  # most common first
    return [(int(size), rows[sizes == size]) for size in order]


def parse_list(text: str | None, allowed, what: str) -> list[str]:
    items = [item.strip() for item in (text or "").split(",") if item.strip()]
    if unknown := [item for item in items if item not in allowed]:
        raise BenchError(f"unknown {what} '{unknown[0]}'; choose from {', '.join(allowed)}")
    return items


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench compare", description=__doc__.split("\n\n")[0].replace("``", "`"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m bench compare --datasets yahoo_resplit,yelp_xu_resplit\n"
               "  python -m bench compare --datasets yahoo,yelp --format latex,md --out tables/\n"
               "  python -m bench compare --datasets yahoo --format latex --columns nll,kl,mi,au --layout wide\n"
               "  python -m bench compare --datasets yahoo,yelp --published-only\n"
               "  python -m bench compare --datasets ptb --results results/real_text --point ptb5k\n")
    parser.add_argument("--datasets", required=True, metavar="A,B")
    parser.add_argument("--methods", metavar="A,B", help="only these run labels (default: all but the scale "
                        "study's points, label@point, which bench.analysis.scale tabulates)")
    parser.add_argument("--point", metavar="NAME", help="compare the methods at this scale-study point instead "
                        "(the runs labelled <label>@NAME, shown as <label>)")
    parser.add_argument("--results", type=Path, default=records.DEFAULT_RESULTS, metavar="DIR")
    parser.add_argument("--profile", metavar="NAME", help="which profile's records (needed when several exist)")
    parser.add_argument("--format", default="table", metavar="F,G", help=f"any of {', '.join(FORMATS)}")
    parser.add_argument("--columns", metavar="A,B", help=f"columns of the table, md and latex formats, from "
                        f"{', '.join(ALL_COLUMNS)} (default: all; latex: {','.join(LATEX_COLUMNS)})")
    parser.add_argument("--layout", choices=LAYOUTS, default="compact",
                        help="latex: compact (intervals on a smaller second line, one text column; default) or "
                             "wide (one line per row, table* across both columns of a two-column paper)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="write comparison.{txt,md,csv,tex} here (csv: also runs.csv, one row per run and "
                             "metric); the terminal then shows only the table format")
    parser.add_argument("--force", action="store_true",
                        help="with --out: replace tables built from more finished runs or another profile")
    parser.add_argument("--published-only", action="store_true", help="show published rows even with no records")
    parser.add_argument("--include-unverified", action="store_true",
                        help="also show published numbers marked unverified (flagged as such)")
    return parser


def measured_frame(args, datasets: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """The chosen finished records as rows and aggregated, and their profile; a one-line error when
    there are none."""
    if args.published_only and not Path(args.results).is_dir():  # the published numbers need no records
        frame = results_layer.run_rows([])
    else:
        frame = load_records(args.results, datasets, args.profile)
    if args.point:
        points = results_layer.points_of(frame)
        if args.point not in points:
            raise BenchError(f"--point {args.point}{did_you_mean(args.point, points)}: no finished records of that "
                             "scale-study point on "
                             f"{', '.join(datasets)} under {args.results}; points present: {', '.join(points) or 'none'}")
        frame = results_layer.at_point(frame, args.point)
    elif not args.methods:  # scale-study points (label@point) only when named
        frame = results_layer.without_points(frame)
    if args.methods and len(frame):
        wanted = [m.strip() for m in args.methods.split(",")]
        if missing := sorted(set(wanted) - set(frame["label"])):
            raise BenchError(f"no finished records for method '{missing[0]}' on {', '.join(datasets)}; "
                             f"present: {', '.join(sorted(set(frame['label'])))}")
        frame = frame[frame["label"].isin(wanted)]
    if frame.empty and not args.published_only:
        known = sorted({path.parts[-4] for path in Path(args.results).glob(f"*/*/*/*/{records.RECORD_NAME}")}
                       | set(DATASETS) | {SYNTHETIC})
        hint = "".join(did_you_mean(d, known) for d in datasets if d not in known)
        raise BenchError(f"no finished records for {', '.join(datasets)}{hint}"
                         + (f" (profile '{args.profile}')" if args.profile else "") + f" under {args.results}; "
                         + results_layer.present(args.results) + "; run `python -m bench sweep experiments/cpu.yaml` (or "
                         "./run_all.sh) first, or pass --published-only to see the published numbers alone")
    profile = args.profile or (frame["profile"].iloc[0] if len(frame) else None)
    if frame.empty:
        frame = pd.DataFrame(columns=list(results_layer.ROW_COLUMNS))
    return frame, aggregate(frame), profile


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    formats = parse_list(args.format, FORMATS, "format")
    chosen = parse_list(args.columns, ALL_COLUMNS, "column")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise BenchError(f"--out {args.out} is a file; pass a folder for comparison.{{txt,md,csv,tex}}")
    rows, measured, profile = measured_frame(args, datasets)
    published = load_published(datasets, args.include_unverified)
    outputs = {style: render(style, datasets, measured, published, profile,
                             chosen or (LATEX_COLUMNS if style == "latex" else ALL_COLUMNS), args.layout, args.point)
               for style in formats}
    for style, text in outputs.items():
        if not args.out or style == "table":  # with --out, files hold the rest
            print(text)
    if args.out:
        # what the tables were built from: committed tables are never replaced by ones from fewer runs
        facts = {"runs": len(rows.drop_duplicates(["label", "dataset", "seed"])), "profile": profile,
                 "datasets": datasets}
        files.refuse_to_replace_with_less(args.out / "comparison.json", facts, args.force)
        suffix = {"table": "txt", "md": "md", "csv": "csv", "latex": "tex"}
        for style, text in outputs.items():
            files.write_text_atomic(args.out / f"comparison.{suffix[style]}", text)
        if "csv" in outputs:  # beside the aggregate, one row per run and metric
            files.write_text_atomic(args.out / "runs.csv", results_layer.tidy(rows).to_csv(index=False))
        if "latex" in outputs:  # every \cite key of the table, for \bibliography{comparison}
            files.write_text_atomic(args.out / "comparison.bib", bibliography(published))
        files.write_json_atomic(args.out / "comparison.json", facts)
        print(f"tables written to {args.out}/")
    return 0


if __name__ == "__main__":
    run_cli(main)
