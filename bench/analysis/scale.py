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
from bench.core.method import build_method
from bench.core.plots import pyplot, save
from bench.core.stats import MARGINS, mean_interval
from bench.cli.sweep import Experiment, expand, load_experiment
from bench.analysis import report, verdicts

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
    if not Path(results).is_dir():
        raise BenchError(f"{experiment_path}={results}: the results folder {results} does not exist; give the folder "
                         "its sweep wrote (e.g. results/real_text)")
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
    if not len(summary):  # a wrong folder: an error, before any committed report or figure is touched
        raise BenchError(f"{results} holds none of the finished runs of {experiment_path}; is it the folder its "
                         f"sweep wrote? (run it first: python -m bench sweep {experiment_path} --results {results})")
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


def axis_family(study: pd.DataFrame, experiment: Experiment, name: str, elsewhere: dict[str, str]) -> verdicts.Family:
    """The axis's family: every remedy (every run of the experiment with a latent) − the VAE on MI
    at every point whose runs are not reported under another axis (``elsewhere``: point ->
    where), Holm over the axis. Stated from the experiment file, not from the records so far, so
    that a run without records yet counts in the correction. Confirmatory only where the
    experiment names its confirmatory seeds (and then only those seeds count)."""
    points = [p for p in experiment.points if p not in elsewhere]
    comparisons = [verdicts.Comparison(point, run.label, report.BASELINE, "mi", "RQ2")
                   for run in experiment.runs for point in points
                   if run.label != report.BASELINE and (run.points is None or point in run.points)
                   and build_method(run.method).uses_latent]
    family = verdicts.Family(f"{name} axis", comparisons, confirmatory=bool(experiment.confirmatory_seeds))
    return family.judge({p: study[study["point"] == p] for p in points}, experiment.confirmatory_seeds or None)


def cell_state(runs: pd.DataFrame) -> str:
    """A (point, method) cell of the summary figure: ``keeps information`` (mean AU >= 1 and mean MI
    above both the MI margin and twice its error), ``collapsed``, or ``not run``."""
    if not len(runs):
        return "not run"
    floor = max(MARGINS["mi"], 2 * float(runs["mi_se"].astype(float).max()))
    return "keeps information" if runs["au"].mean() >= 1 and runs["mi"].mean() > floor else "collapsed"


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
        axis.set_xticks(range(len(points)), points)
        axis.set_xlim(-0.5, len(points) - 0.5)  # room for the end points' side-by-side offsets
        axis.set_title(title, fontsize=10)
        axis.grid(alpha=0.3)
    axes.flat[4].legend(fontsize=8)  # the NLL panel has every method, the language model too
    seeds = study.groupby(["label", "point"]).size()
    figure.suptitle(f"Scale study, {name}: {' / '.join(axis_keys(experiment))} ({experiment.profile} profile; "
                    f"mean over {seeds.min()}" + (f"-{seeds.max()}" if seeds.max() > seeds.min() else "")
                    + f" seed{'s' if seeds.max() > 1 else ''} per point, bars: 95% t-interval, none with one seed)")
    return save(figure, out / f"scale_{name}")


def own_points(experiment: Experiment) -> str:
    """`` (aggressive only at len10)`` for the runs that name their own points."""
    limited = [f"{run.label} only at {', '.join(run.points)}" for run in experiment.runs if run.points is not None]
    return f" ({'; '.join(limited)})" if limited else ""


def study_section(experiment_path: Path, results: Path, figures: Path, reported: dict[str, str],
                  loaded: tuple[Experiment, pd.DataFrame]) -> tuple[list[str], list[tuple[str, str, str, str]]]:
    """One axis: its table, figure and verdict table; and its cells for the summary figure
    (column, method, state, verdict). ``reported`` maps the run ids already reported under an
    earlier axis to where: a point made of those runs is shown but judged there, once.
    ``loaded``: :func:`load_study`'s experiment and rows."""
    experiment, study = loaded
    name = experiment_path.stem.removeprefix("scale_")
    expected = len(expand(experiment))
    # an axis whose one point changes no setting compares datasets (the domain axis)
    axis = ", ".join(axis_keys(experiment)) or f"datasets {', '.join(experiment.datasets)}"
    lines = [f"## {name}: {axis}", "",
             f"Experiment `{experiment_path}` ({experiment.profile} profile), records under `{results}`: "
             f"{len(study)} of {expected} runs finished ({verdicts.counted(len(experiment.runs), 'method')} at "
             f"{verdicts.counted(len(experiment.points), 'point')}: {', '.join(experiment.points)}"
             f"{own_points(experiment)}; seeds {', '.join(map(str, experiment.seeds))}). "
             "Reduced numbers: never compare them with published ones.", ""]
    elsewhere = {}
    for point in experiment.points:
        ids = set(study[study["point"] == point]["run_id"].dropna())
        where = {reported[i] for i in ids if i in reported}
        if ids and len(where) == 1 and all(i in reported for i in ids):
            elsewhere[point] = where.pop()
    for point in experiment.points:
        if point not in elsewhere:
            for run_id in study[study["point"] == point]["run_id"].dropna():
                reported.setdefault(run_id, f"{name} {point}")
    family = axis_family(study, experiment, name, elsewhere)
    figure = plot_study(study, experiment, name, figures)
    labels = [run.label for run in experiment.runs if run.label != report.BASELINE]
    judged = [p for p in experiment.points if p not in elsewhere]
    same = "; ".join(f"{p}: the same runs as {where}, judged there" for p, where in elsewhere.items())
    lines += [point_table(study, experiment), "", f"![scale {name}](figures/{figure})", "",
              f"### Does each remedy keep more information than the VAE? (RQ2 along the {name} axis)", "",
              family.statement(), "", *(f"{note}" for note in (verdicts.clean_note(study), verdicts.estimator_note(study),
                                                            same) if note), "",
              verdicts.verdict_table(family, judged, labels), ""]
    cells = []
    without_latent = set(study[~study["uses_latent"].astype(bool)]["label"])  # the LM: nothing to keep
    for point in experiment.points:
        for run in experiment.runs:
            runs = study[(study["point"] == point) & (study["label"] == run.label)]
            if run.points is not None and point not in run.points or run.label in without_latent:
                continue
            outcome = family.outcome(point, run.label)
            cells.append((f"{name}:{point}", run.label, cell_state(runs),
                          outcome.verdict if outcome and outcome.tested else ""))
    return lines, cells


STATES = {"keeps information": 2, "collapsed": 1, "not run": 0}


def plot_summary(cells: list[tuple[str, str, str, str]], out: Path) -> str | None:
    """The whole study in one figure: a column per axis point, a row per method; colour: keeps
    information (mean AU >= 1, MI above the margin), collapsed, not run; mark: the paired,
    Holm-corrected verdict against the VAE at that point (+ higher, = equivalent, o not
    distinguishable or below the margin)."""
    if not cells:
        return None
    plt = pyplot()
    from matplotlib.colors import ListedColormap
    columns = list(dict.fromkeys(c[0] for c in cells))
    methods = list(dict.fromkeys(c[1] for c in cells))
    grid = [[math.nan] * len(columns) for _ in methods]
    marks = {"higher": "+", "lower": "−", "equivalent": "=", "not distinguishable": "o", "below margin": "o"}
    figure, axis = plt.subplots(figsize=(0.55 * len(columns) + 3, 0.42 * len(methods) + 2.2))
    for column, method, state, verdict in cells:
        row, col = methods.index(method), columns.index(column)
        grid[row][col] = STATES[state]
        if verdict:
            axis.text(col, row, marks.get(verdict, ""), ha="center", va="center", fontsize=11, fontweight="bold")
    axis.imshow(grid, cmap=ListedColormap(["0.92", "#f4b6a8", "#8fd18f"]), vmin=0, vmax=2, aspect="auto")
    axis.set_xticks(range(len(columns)), columns, rotation=60, ha="right", fontsize=8)
    axis.set_yticks(range(len(methods)), methods, fontsize=8)
    from matplotlib.patches import Patch
    axis.legend(handles=[Patch(color="#8fd18f", label="keeps information"), Patch(color="#f4b6a8", label="collapsed"),
                         Patch(color="0.92", label="not run yet"), Patch(color="white", label="not in that axis")],
                loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    axis.set_title("Scale study: every axis point x method (mark: paired, Holm-corrected ΔMI vs the VAE; "
                   "+ higher, = equivalent, o not distinguishable)", fontsize=9)
    return save(figure, out / "scale_summary")


def write_scale_report(studies: list[tuple[Path, Path]], out: Path, force: bool = False) -> Path:
    lines = ["# collapse-bench scale study", "",
             "Generated by `python -m bench scale` from the committed records of each scale experiment: one axis at "
             "a time from a stated base point. Values are mean ± half-width of the 95% t-interval over training "
             "seeds (none with one seed). Verdicts: each remedy − the VAE on MI, paired by seed, Holm-corrected over "
             "the axis, with a margin of 0.1 nats (bench.analysis.verdicts); a point whose runs are another axis's "
             "is judged once, there. Learning-rate decays: how often the rate rule cut the rate in a run.", ""]
    path = out / "SCALE.md"
    loaded = [load_study(experiment_path, results) for experiment_path, results in studies]
    facts = {"runs": sum(len(study) for _, study in loaded), "sections": len(studies)}
    files.refuse_to_replace_with_less(path, facts, force)  # before any figure is redrawn
    sections, cells, reported = [], [], {}
    for (experiment_path, results), study in zip(studies, loaded):
        section, axis_cells = study_section(experiment_path, results, out / "figures", reported, study)
        sections += section
        cells += axis_cells
    summary = plot_summary(cells, out / "figures")
    if summary:
        lines += [f"![the whole study](figures/{summary})", ""]
    files.write_generated(path, "\n".join(lines + sections), facts, force=True)
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
    parser.add_argument("--force", action="store_true",
                        help="replace an existing SCALE.md even when the new one has fewer runs or sections")
    args = parser.parse_args(argv)
    print(f"scale study: {write_scale_report([parse_study(s) for s in args.studies], args.out, args.force)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
