"""The scale study: at which setting along an axis each remedy starts to keep information.

``python -m bench scale experiments/scale_length.yaml=results/scale_length [...]`` reads each
scale experiment (an experiment file whose ``points`` are the settings along one axis, in
order: sentence length, training data, model width, ...) with the finished records of its
results folder, and writes ``SCALE.md`` and its figures: per axis, a table of KL, MI, AU,
encoder-feature dispersion, IW NLL, learning-rate decays (whether training was long enough
for the rate rule to act) and training time for every method at every point (mean ±
half-width of the 95% t-interval over seeds), where each remedy and max pooling first
separate from the standard VAE (the report's test: 95% MI intervals over seeds that do not
overlap the VAE's and lie above the MI noise floor), the research questions answered at each
point (:mod:`bench.analysis.report`'s paragraphs, each naming its test), and one figure of every
metric against the axis, a line per method with 95% intervals. Points still running or not
yet run are listed as such. Nothing here is typed in by hand: rerun it as records arrive.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from bench.core import files, records
from bench.core import results as results_layer
from bench.core.errors import BenchError, run_cli
from bench.core.plots import pyplot, save
from bench.core.stats import mean_interval
from bench.cli.sweep import Experiment, expand, load_experiment
from bench.analysis import report

# (column, axis title): what each figure panel and table column shows
SCALE_METRICS = (("kl", "test KL (nats)"), ("mi", "test MI (nats)"), ("au", "active units"),
                 ("feature_cosine_distance", "h(x) mean pairwise cosine distance"),
                 ("nll", "test IW NLL (nats)"), ("train_hours", "training hours"))
# the table adds whether training was long enough for the learning-rate rule to act
TABLE_METRICS = (*SCALE_METRICS[:5], ("lr_decays", "learning-rate decays"), SCALE_METRICS[5])
LATENT_ONLY = {"kl", "mi", "au", "feature_cosine_distance"}


def axis_keys(experiment: Experiment) -> list[str]:
    """The settings (``section.key``) whose values differ between the experiment's points."""
    values: dict[str, set] = {}
    for settings in experiment.points.values():
        for section, items in settings.items():
            for key, value in items.items():
                values.setdefault(f"{section}.{key}", set()).add(repr(value))
    return [key for key, seen in values.items() if len(seen) > 1 or len(experiment.points) == 1]


def load_study(experiment_path: Path, results: Path) -> tuple[Experiment, pd.DataFrame]:
    """The experiment and one row per finished run of it: the report's columns, with the run
    label split into the method label and the point."""
    experiment = load_experiment(experiment_path)
    if not experiment.points:
        raise BenchError(f"{experiment_path} has no points: a scale study needs an experiment whose `points` are "
                         "the settings along one axis (e.g. experiments/scale_length.yaml)")
    summary, _ = results_layer.read_runs(results, experiment.profile)
    if len(summary):
        split = summary["label"].str.rsplit(results_layer.POINT_SEPARATOR, n=1, expand=True)
        if split.shape[1] < 2:  # no record with a point in its label
            split[1] = None
        summary = summary.assign(label=split[0], point=split[1])
        summary = summary[summary["point"].isin(list(experiment.points))]
    return experiment, summary


def cell(values: pd.Series, digits: int) -> str:
    values = values.dropna().astype(float)
    if not len(values):
        return "-"
    interval = mean_interval(values)
    return f"{interval.estimate:.{digits}f}" + ("" if math.isnan(interval.low) else f" ± {interval.half_width:.{digits}f}")


def point_table(study: pd.DataFrame, experiment: Experiment) -> str:
    """Markdown: a row per (point, method) in the experiment's order, n seeds and each metric."""
    digits = {"kl": 2, "mi": 2, "au": 1, "feature_cosine_distance": 3, "nll": 2, "lr_decays": 1, "train_hours": 3}
    rows = []
    for point in experiment.points:
        for run in experiment.runs:
            runs = study[(study["point"] == point) & (study["label"] == run.label)]
            if run.points is not None and point not in run.points:
                continue  # not a run of this point (the experiment file names its points)
            if not len(runs):
                rows.append([point, run.label, 0, *["not run yet"] + ["" for _ in TABLE_METRICS[1:]]])
                continue
            latent = bool(runs["uses_latent"].all())
            rows.append([point, run.label, len(runs), *[
                cell(runs[column], digits[column]) if latent or column not in LATENT_ONLY else "-"
                for column, _ in TABLE_METRICS]])
    return tabulate(rows, headers=["point", "method", "n", *[title for _, title in TABLE_METRICS]],
                    tablefmt="github", disable_numparse=True)


def separation_lines(study: pd.DataFrame, experiment: Experiment) -> list[str]:
    """Per remedy: the points where it separates from the VAE, and the first of them, each
    point's verdict with the remedy's MI (mean ± 95% t half-width over seeds); the VAE's MI and
    the noise floor at each point come first, so that every verdict can be checked by eye."""
    points = [p for p in experiment.points if len(study[study["point"] == p])]
    verdicts: dict[str, dict[str, tuple[str, str]]] = {}
    reference = []
    for point in points:
        rows = study[study["point"] == point]
        mi = lambda label: cell(rows[rows["label"] == label]["mi"], 2)  # noqa: E731
        if (rows["label"] == report.BASELINE).any():
            reference.append(f"{point} {mi(report.BASELINE)} (floor ±{report.mi_floor(rows):.2f})")
        split = report.separated_labels(rows)
        for run in experiment.runs:
            if run.label not in report.remedies(rows):
                continue  # the VAE itself, a model without a latent, or not run at this point
            if split is None:
                verdict = "too few VAE seeds"
            elif run.label in split[0]:
                verdict = "separates"
            elif run.label in split[1]:
                verdict = "does not"
            else:
                verdict = "one seed"
            verdicts.setdefault(run.label, {})[point] = (verdict, mi(run.label))
    lines = [f"- **{report.BASELINE}** (the reference), MI per point: {'; '.join(reference)}."] if reference else []
    for label, by_point in verdicts.items():
        apart = [p for p, (v, _) in by_point.items() if v == "separates"]
        tried = ", ".join(f"{p}: {v} (MI {mi})" for p, (v, mi) in by_point.items())
        tested = [p for p, (v, _) in by_point.items() if v in ("separates", "does not")]
        order = list(experiment.points)
        untested = [p for p in order[:order.index(apart[0])] if p not in tested] if apart else []
        head, last = (apart or [""])[0], (tested or [""])[-1]
        first = report.first_true((
            (bool(untested), f"separates at {head}; the points before it ({', '.join(untested)}) not tested yet"),
            (bool(apart), f"first separates at {head}"),
            (bool(tested), f"separates at no point tested (the largest tested: {last})"),
            (True, "not testable yet (fewer than 2 seeds a side at every point)")))
        pooling = " (max pooling, the paper's method)" if label in report.POOLING_LABELS else ""
        lines.append(f"- **{label}**{pooling}: {first}; {tried}.")
    return lines if verdicts else \
        ["- No point has 2 or more seeds of the VAE and of a remedy yet: no separation can be tested."]


def plot_study(study: pd.DataFrame, experiment: Experiment, name: str, out: Path) -> str | None:
    """Every metric against the axis, a line per method: mean over seeds, 95% t-interval bars."""
    if not len(study):
        return None
    plt = pyplot()
    points = list(experiment.points)
    labels = [run.label for run in experiment.runs if run.label in set(study["label"])]
    styles = report.line_styles(labels)
    figure, axes = plt.subplots(2, 3, figsize=(15, 7.5))
    for axis, (column, title) in zip(axes.flat, SCALE_METRICS):
        for offset, label in enumerate(labels):
            runs = study[study["label"] == label]
            if column in LATENT_ONLY and not runs["uses_latent"].all():
                continue
            xs, means, errors = [], [], []
            for index, point in enumerate(points):
                values = runs[runs["point"] == point][column].dropna().astype(float)
                if not len(values):
                    continue
                interval = mean_interval(values)
                xs.append(index + 0.06 * (offset - (len(labels) - 1) / 2))  # side by side, not on top
                means.append(interval.estimate)
                errors.append(0.0 if math.isnan(interval.low) else interval.half_width)
            if xs:
                axis.errorbar(xs, means, yerr=errors, label=label, capsize=3, markersize=5, **styles[label])
        if column == "mi" and "mi_se" in study:
            floor = report.mi_floor(study)
            axis.axhspan(-floor, floor, color="0.85", zorder=0, label="MI noise floor (±2 sd)")
        axis.set_xticks(range(len(points)), points)
        axis.set_xlim(-0.5, len(points) - 0.5)  # room for the end points' side-by-side offsets
        axis.set_title(title, fontsize=10)
        axis.grid(alpha=0.3)
    axes.flat[4].legend(fontsize=8)  # the NLL panel has every method, the language model too
    mi_axis = axes.flat[1]
    floor_patch = [h for h, l in zip(*mi_axis.get_legend_handles_labels()) if l.startswith("MI noise")]
    if floor_patch:
        mi_axis.legend(floor_patch, ["MI noise floor (±2 sd)"], fontsize=8, loc="upper left")
    seeds = study.groupby(["label", "point"]).size()
    figure.suptitle(f"Scale study, {name}: {' / '.join(axis_keys(experiment))} ({experiment.profile} profile; "
                    f"mean over {seeds.min()}" + (f"-{seeds.max()}" if seeds.max() > seeds.min() else "")
                    + f" seed{'s' if seeds.max() > 1 else ''} per point, bars: 95% t-interval, none with one seed)")
    return save(figure, out / f"scale_{name}")


def own_points(experiment: Experiment) -> str:
    """`` (aggressive only at len10)`` for the runs that name their own points."""
    limited = [f"{run.label} only at {', '.join(run.points)}" for run in experiment.runs if run.points is not None]
    return f" ({'; '.join(limited)})" if limited else ""


def study_section(experiment_path: Path, results: Path, figures: Path) -> list[str]:
    experiment, study = load_study(experiment_path, results)
    name = experiment_path.stem.removeprefix("scale_")
    expected = len(expand(experiment))
    # an axis whose one point changes no setting compares datasets (the domain axis)
    axis = ", ".join(axis_keys(experiment)) or f"datasets {', '.join(experiment.datasets)}"
    lines = [f"## {name}: {axis}", "",
             f"Experiment `{experiment_path}` ({experiment.profile} profile), records under `{results}`: "
             f"{len(study)} of {expected} runs finished ({len(experiment.runs)} methods at {len(experiment.points)} "
             f"points: {', '.join(experiment.points)}{own_points(experiment)}; seeds "
             f"{', '.join(map(str, experiment.seeds))}). Reduced numbers: never compare them with published ones.", ""]
    if not len(study):
        return lines + ["No finished runs yet: run the experiment (README: the real-text scale study).", ""]
    figure = plot_study(study, experiment, name, figures)
    lines += [point_table(study, experiment), "", f"![scale {name}](figures/{figure})", "",
              "### Where each remedy separates from the VAE", "",
              "Test at each point: the method's 95% MI t-interval over seeds does not overlap the VAE's and lies "
              "above the MI noise floor (at least 2 seeds a side).", "", *separation_lines(study, experiment), "",
              "### The research questions at each point", ""]
    scale = f"on the reduced '{experiment.profile}' profile, not at paper scale"
    for point in experiment.points:
        rows = study[study["point"] == point].assign(dataset=lambda frame: frame["dataset"] + " " + point)
        if not len(rows):
            continue
        lines.append(report.rq1(rows, scale).replace("**RQ1", f"**RQ1 ({point})", 1))
        lines.append("")
        for dataset in rows["dataset"].unique():
            lines += [f"{paragraph}\n" for paragraph in (*report.separated_from_vae(rows, dataset),
                                                         *report.dataset_answers(rows, dataset, scale))]
    return lines


def write_scale_report(studies: list[tuple[Path, Path]], out: Path) -> Path:
    lines = ["# collapse-bench scale study", "",
             "Generated by `python -m bench scale` from the committed records of each scale experiment: one axis at "
             "a time from a stated base point (issue: the real-text scale study). Values are mean ± half-width of the "
             "95% t-interval over training seeds (none with one seed). Learning-rate decays: how often the rate rule "
             "cut the rate in a run (0: validation never worsened for long enough).", ""]
    for experiment_path, results in studies:
        lines += study_section(experiment_path, results, out / "figures")
    path = out / "SCALE.md"
    files.make_output_dir(out)
    path.write_text("\n".join(lines) + "\n")
    return path


def parse_study(text: str) -> tuple[Path, Path]:
    experiment, _, results = text.partition("=")
    if not results:
        raise BenchError(f"'{text}': give each study as EXPERIMENT=RESULTS, e.g. "
                         "experiments/scale_length.yaml=results/scale_length")
    return Path(experiment), Path(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench scale", description=__doc__.split("\n\n")[0],
                                     epilog="example: python -m bench scale experiments/scale_length.yaml="
                                            "results/scale_length experiments/scale_data.yaml=results/real_text")
    parser.add_argument("studies", nargs="+", metavar="EXPERIMENT=RESULTS",
                        help="a scale experiment file and the results folder of its sweep")
    parser.add_argument("--out", type=Path, default=records.DEFAULT_RESULTS, metavar="DIR",
                        help="where SCALE.md and figures/ go (default: results)")
    args = parser.parse_args(argv)
    print(f"scale study: {write_scale_report([parse_study(s) for s in args.studies], args.out)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
