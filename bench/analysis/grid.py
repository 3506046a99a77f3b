"""The encoder x objective grid: does an encoder add anything to what each objective does alone?

A report whose runs cross encoders with objectives (``experiments/encoder_objective_*.yaml``)
gets one section from here: every run placed in its cell, a table of the cells (MI and AU with
their 95% t-intervals over seeds, KL, NLL, h(x) dispersion and where max-pooled states peak),
the paired verdicts of each encoder against the last state under the same objective, RQ2
answered per objective, and one figure of MI and AU per cell.

A run's cell comes from its label and method: the label's parts (joined by ``+``) line up with
the method's parts; a part whose method changes what the encoder reads (overrides
``encoder_summary``: :func:`bench.core.method.changed_hooks`) names the encoder, any other part
that changes something names the objective (its training recipe), and a part that changes
nothing (the standard VAE) names neither. So the VAE is the last state under the plain
objective, ``kl_anneal`` the last state under annealing, ``pooling_max+kl_anneal`` max pooling
under annealing, and an encoder set up by model settings under its own label (``cpvae_max``:
CP-VAE's bidirectional encoder, method ``pooling``) is an encoder of its own. Language models
have no cell.

The verdicts are those of the experiment's stated family (:mod:`bench.analysis.verdicts`: paired
by seed, Holm over the family, over its confirmatory seeds) where it states the comparison; any
other comparison of the grid is shown as exploration (paired, uncorrected) and labelled so.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bench.core.method import COMBINE_SEPARATOR, changed_hooks
from bench.core.plots import pyplot, save
from bench.core.stats import MARGINS, mean_interval
from bench.analysis import verdicts

LAST_STATE, PLAIN = "last state", "plain"
ENCODER_HOOK = "encoder_summary"
SHOWN = (("mi", "MI (nats)"), ("au", "active units"))  # the figure's panels


def cell_of(label: str, method: str) -> tuple[str, str]:
    """(encoder, objective) of a run: see the module's docstring."""
    method_parts = method.split(COMBINE_SEPARATOR)
    label_parts = label.split(COMBINE_SEPARATOR)
    if len(label_parts) != len(method_parts):  # a label that does not name its parts: the method's names
        label_parts = method_parts
    encoder, objective = [], []
    for name, part in zip(label_parts, method_parts):
        hooks = changed_hooks(part)
        if ENCODER_HOOK in hooks:
            encoder.append(name)
        elif hooks:
            objective.append(name)
    return (COMBINE_SEPARATOR.join(encoder) or LAST_STATE, COMBINE_SEPARATOR.join(objective) or PLAIN)


def grid_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """The latent models' test rows with their ``encoder`` and ``objective``."""
    rows = summary[summary["uses_latent"].astype(bool) & (summary["evaluation"] == "test")].copy()
    cells = [cell_of(label, method) for label, method in zip(rows["label"], rows["method"])]
    rows["encoder"] = [encoder for encoder, _ in cells]
    rows["objective"] = [objective for _, objective in cells]
    return rows


def is_grid(grid: pd.DataFrame) -> bool:
    """One run label per cell, and at least two objectives each run with the last state and another
    encoder (runs that only line remedies up against the VAE are the report's other sections)."""
    if len(grid) == 0 or grid.groupby(["encoder", "objective"])["label"].nunique().max() > 1:
        return False  # e.g. vae and vae_3x share a cell: not a grid of encoders and objectives
    crossed = grid.groupby("objective")["encoder"].agg(lambda e: LAST_STATE in set(e) and len(set(e)) > 1)
    return int(crossed.sum()) >= 2


def ordered(values, first: str) -> list[str]:
    return sorted(set(values), key=lambda v: (v != first, v))


def interval_text(values: pd.Series, digits: int) -> str:
    interval = mean_interval(values.astype(float).tolist())
    if math.isnan(interval.low):
        return f"{interval.estimate:.{digits}f}"
    return f"{interval.estimate:.{digits}f} ± {interval.half_width:.{digits}f}"


def cell_table(grid: pd.DataFrame) -> str:
    """Markdown: a row per cell (objective, then encoder), mean ± half-width of the 95% t-interval over seeds."""
    from tabulate import tabulate
    rows = []
    for objective in ordered(grid["objective"], PLAIN):
        for encoder in ordered(grid[grid["objective"] == objective]["encoder"], LAST_STATE):
            runs = grid[(grid["objective"] == objective) & (grid["encoder"] == encoder)]
            peaks = runs[["max_at_start", "max_at_end"]].astype(float).dropna()
            rows.append([objective, encoder, runs.iloc[0]["label"], str(runs["seed"].nunique()),
                         interval_text(runs["mi"], 2), f"{runs['mi_batch'].astype(float).mean():.2f}",
                         interval_text(runs["au"], 1), f"{runs['kl'].mean():.2f}", f"{runs['nll'].mean():.2f}",
                         f"{runs['feature_cosine_distance'].mean():.3f}",
                         f"{peaks['max_at_start'].mean():.2f} / {peaks['max_at_end'].mean():.2f}" if len(peaks) else "-",
                         f"{60 * runs['train_hours'].astype(float).mean():.1f}"])
    return tabulate(rows, headers=["objective", "encoder", "run", "n", "MI", "MI (He et al.)", "AU", "KL", "NLL",
                                   "h(x) cos. dist.", "peak at start / end", "train min"],
                    tablefmt="github", disable_numparse=True)


def comparisons(grid: pd.DataFrame) -> list[tuple[str, str, str, str]]:
    """(objective, encoder, its run's label, the last state's run label under the same objective)."""
    found = []
    for objective in ordered(grid["objective"], PLAIN):
        runs = grid[grid["objective"] == objective]
        last = runs[runs["encoder"] == LAST_STATE]["label"]
        if not len(last):
            continue
        for encoder in ordered(runs["encoder"], LAST_STATE)[1:]:
            found.append((objective, encoder, runs[runs["encoder"] == encoder]["label"].iloc[0], last.iloc[0]))
    return found


def judged(grid: pd.DataFrame, family: verdicts.Family | None, scope: str, label: str, reference: str,
           metric: str) -> tuple[verdicts.Outcome, bool]:
    """The family's outcome of ``label - reference`` where the family states it (confirmatory or not
    as the family is), else an uncorrected paired test (exploration): (outcome, from the family)."""
    stated = family.outcome(scope, label, metric, reference) if family else None
    if stated is not None:
        return stated, True
    return verdicts.uncorrected(grid, label, reference, metric), False


def verdict_table(grid: pd.DataFrame, family: verdicts.Family | None, scope: str) -> str:
    """Markdown: per objective and encoder, the encoder − the last state (ΔMI from the family; ΔAU, ΔNLL exploratory)."""
    from tabulate import tabulate
    rows = []
    for objective, encoder, label, reference in comparisons(grid):
        mi, stated = judged(grid, family, scope, label, reference, "mi")
        rows.append([objective, f"{encoder} − {LAST_STATE}", mi.cell() + ("" if stated else " (exploratory)"),
                     verdicts.uncorrected(grid, label, reference, "au").cell(1),
                     verdicts.uncorrected(grid, label, reference, "nll").cell()])
    return tabulate(rows, headers=["objective", "encoder", "ΔMI (verdict)", "ΔAU (exploratory)",
                                   "ΔNLL (exploratory)"], tablefmt="github", disable_numparse=True)


WORDS = {"higher": "keeps more information than the last state",
         "lower": "keeps less information than the last state",
         "equivalent": f"keeps the same information as the last state within {MARGINS['mi']:g} nats",
         "below margin": f"differs from the last state by less than the {MARGINS['mi']:g}-nat margin",
         "not distinguishable": "is not told apart from the last state (neither more nor the same shown)"}


def rq2_per_objective(grid: pd.DataFrame, family: verdicts.Family | None, scope: str) -> str:
    """RQ2 per objective, in words: does each encoder add information (MI) over the last state?"""
    parts = {}
    for objective, encoder, label, reference in comparisons(grid):
        outcome, stated = judged(grid, family, scope, label, reference, "mi")
        # no verdict (interim, not run): the reason, in brackets, stands in for the words
        words = WORDS.get(outcome.verdict, f"({outcome.reason or outcome.verdict})")
        test = outcome.test
        detail = f"{test.estimate:+.2f} [{test.low:+.2f}, {test.high:+.2f}], n={test.n}" if outcome.tested else ""
        kind = "" if stated and family and family.confirmatory else " (exploratory)"
        parts.setdefault(objective, []).append(f"{encoder} {words}{f' ({detail})' if detail else ''}{kind}")
    return f"**RQ2 per objective ({scope}).** Does pooling add information to what the objective does alone? " + \
        "; ".join(f"{objective}: {', '.join(found)}" for objective, found in parts.items()) + "."


def plot_grid(grid: pd.DataFrame, scope: str, out: Path) -> str:
    """MI and AU per cell: a group per objective, a marker per encoder with the 95% t-interval over
    seeds, each seed's value beside it."""
    plt = pyplot()
    objectives = ordered(grid["objective"], PLAIN)
    encoders = ordered(grid["encoder"], LAST_STATE)
    figure, axes = plt.subplots(1, len(SHOWN), figsize=(6.2 * len(SHOWN), 3.8))
    width = 0.8 / len(encoders)
    for axis, (metric, title) in zip(axes, SHOWN):
        for index, encoder in enumerate(encoders):
            xs, means, errors = [], [], []
            for x, objective in enumerate(objectives):
                values = grid[(grid["objective"] == objective) & (grid["encoder"] == encoder)][metric].astype(float)
                if not len(values):
                    continue
                interval = mean_interval(values.tolist())
                xs.append(x - 0.4 + width * (index + 0.5))
                axis.scatter([xs[-1] + width / 4] * len(values), values, s=8, color=f"C{index}", alpha=0.4)  # the seeds
                means.append(interval.estimate)
                errors.append(0.0 if math.isnan(interval.low) else interval.half_width)
            axis.errorbar(xs, means, yerr=errors, fmt="ox^sdv"[index % 6], capsize=3, label=encoder, color=f"C{index}")
        axis.set_xticks(range(len(objectives)))
        axis.set_xticklabels(objectives, rotation=15, fontsize=8)
        axis.set_title(f"test {title}")
        axis.grid(alpha=0.3)
    axes[-1].legend(fontsize=8, title="encoder", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    seeds = int(grid.groupby("label")["seed"].nunique().max())
    figure.suptitle(f"{scope}: encoder x objective (mean over up to {seeds} seeds, bars: 95% t-interval; "
                    "small dots: the seeds)")
    return save(figure, out / f"grid_{scope}")


def grid_section(summary: pd.DataFrame, families: list[verdicts.Family], figures: Path) -> list[str]:
    """The report's "Encoder x objective" section, per dataset whose runs form a grid (else nothing);
    a dataset's verdicts are those of the stated family judged on it (``families``: one per
    experiment file), and its cells use only the seeds that family was judged over (the
    confirmatory seeds: the others were seen before the family was stated)."""
    lines = []
    for scope in sorted(summary["dataset"].unique()):
        family = next((f for f in families if scope in f.scopes), None)
        seeds = family.seeds_of.get(scope, ()) if family else ()
        rows = summary[summary["dataset"] == scope]
        grid = grid_frame(rows[rows["seed"].isin(seeds)] if seeds else rows)
        if not is_grid(grid):
            continue
        lines += [f"### {scope}", ""]
        if seeds:
            lines += [f"Seeds {', '.join(map(str, seeds))} only (the experiment's confirmatory seeds).", ""]
        lines += [cell_table(grid), "",
                  "Per objective, each encoder minus the last state, paired by seed:", "",
                  verdict_table(grid, family, scope), "", rq2_per_objective(grid, family, scope), "",
                  f"![grid](figures/{plot_grid(grid, scope, figures)})", ""]
    if not lines:
        return []
    return ["## Encoder x objective", "",
            "Every latent model placed by the encoder it reads with and the objective that trains it (the run's "
            "label and method: `bench.analysis.grid`). Cells: mean ± half-width of the 95% t-interval over seeds; "
            "'MI (He et al.)': their per-batch estimate (`mi_batch`, capped at log 50); 'train min': training "
            "minutes, mean over seeds (the tables' time ratios say which runs were timed alike); 'peak at start / end': the share of encoder dimensions whose maximum over time falls on the start "
            "or the end token in most test sentences (Bosc & Vincent's pooling study; '-' where not recorded). "
            "ΔMI carries the stated family's verdict (Holm over the family) where the family states it; ΔAU and "
            "ΔNLL are exploration (paired, uncorrected).", "", *lines]
