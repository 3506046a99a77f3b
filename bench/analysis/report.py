"""Figures and a report answering the paper's four questions from the run records.

``python -m bench report [--results DIR] [--profile NAME]`` writes ``results/REPORT.md``
and the figures it shows (PNG and PDF, under ``results/figures/``): curves of KL, MI, AU and
validation loss against epoch and wall-clock time per method (mean over seeds, band =
min..max), training time relative to the standard VAE (RQ3), and the encoder feature
dispersion analysis (RQ1). Each question gets a paragraph generated from the measured
numbers that says plainly whether they agree with the paper's claim. Nothing here is
typed in by hand: rerun it after new runs.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Sequence

import pandas as pd

from bench.core import files, records
from bench.core import results as results_layer
from bench.core.errors import BenchError, did_you_mean, run_cli
from bench.core.plots import pyplot, save
from bench.cli import compare
from bench.analysis import grid, verdicts

CURVE_METRICS = (("valid_kl", "KL (nats)"), ("valid_mi", "MI (nats)"), ("valid_au", "active units"),
                 ("valid_elbo_nll", "validation -ELBO (nats)"))
POOLING, BASELINE, PREVIOUS_BEST = "pooling", "vae", ("aggressive+kl_anneal", "aggressive")
POOLING_LABELS = (POOLING, "pooling_max")  # max pooling (the paper's method), as experiments label it
COLLAPSED_KL = 0.1  # nats: KL or MI below this, with no active unit, counts as collapsed
LONGER_SUFFIX = "_3x"  # a run label with this suffix: the same method with 3x the training (scale evidence)


def load_runs(results: Path, profile: str | None) -> tuple[pd.DataFrame, list[dict]]:
    """Finished records of one profile as (rows, records): :func:`bench.core.results.read_runs`."""
    summary, found = results_layer.read_runs(results, profile)
    summary = results_layer.without_points(summary)  # the scale study's points: bench.analysis.scale
    found = [r for r in found if results_layer.POINT_SEPARATOR not in r.get("label", "")]
    if not found:
        stray = profile and profile not in results_layer.present_profiles(results)
        raise BenchError(f"no finished records under {results}" + (f" for profile '{profile}'" if profile else "")
                         + (did_you_mean(profile, results_layer.present_profiles(results)) if stray else "")
                         + f" ({results_layer.present(results)}); run ./run_all.sh or python -m bench sweep first")
    return summary, found


def curve_frame(found: list[dict]) -> pd.DataFrame:
    rows = [{"label": r["label"], "dataset": r["dataset"], "seed": r["seed"], "uses_latent": results_layer.uses_latent(r), **row}
            for r in found for row in r["curves"]]
    return pd.DataFrame(rows)


def line_styles(labels) -> dict[str, dict]:
    """One colour, line style and marker per method, the same in every figure (tab20 colours;
    styles and markers cycle so that a line drawn over another stays visible)."""
    cmap = pyplot().get_cmap("tab20")
    return {label: {"color": cmap(index % 20), "linestyle": ("-", "--", ":", "-.")[index % 4],
                    "marker": ".ox^sv"[index % 6]} for index, label in enumerate(sorted(set(labels)))}


def plot_curves(curves: pd.DataFrame, dataset: str, out: Path, styles: dict[str, dict]) -> list[str]:
    """KL, MI, AU and validation loss against epoch and against seconds, a line per method
    (a model without a latent only in the loss panel; runs with 3x the training left out, so
    that they do not stretch the axes: the report's scale paragraph has them)."""
    plt = pyplot()
    names = []
    data = curves[(curves["dataset"] == dataset) & ~curves["label"].str.endswith(LONGER_SUFFIX)]
    for x_column, x_label, suffix in (("epoch", "epoch", "epoch"), ("elapsed_seconds", "wall-clock seconds", "time")):
        figure, axes = plt.subplots(1, len(CURVE_METRICS), figsize=(4.2 * len(CURVE_METRICS), 3.4))
        for axis, (metric, title) in zip(axes, CURVE_METRICS):
            for label, group in data.groupby("label", sort=True):
                if metric != "valid_elbo_nll" and not group["uses_latent"].all():
                    continue  # a language model has no KL, MI or AU to draw
                by_epoch = group.groupby("epoch")
                x = by_epoch[x_column].mean()
                axis.plot(x, by_epoch[metric].mean(), label=label, markersize=4, **styles[label])
                if group["seed"].nunique() > 1:
                    axis.fill_between(x, by_epoch[metric].min(), by_epoch[metric].max(), alpha=0.15,
                                      color=styles[label]["color"])
            axis.set_xlabel(x_label)
            axis.set_title(title)
            axis.grid(alpha=0.3)
        axes[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        seeds = int(data.groupby("label")["seed"].nunique().max()) if len(data) else 0
        figure.suptitle(f"{dataset}: validation curves (mean over up to {seeds} seeds; band = min..max)")
        names.append(save(figure, out / f"curves_{dataset}_{suffix}"))
    return names


def plot_time(summary: pd.DataFrame, dataset: str, out: Path) -> str | None:
    """Each method's training time / the VAE's with its 95% interval, where comparable (compare.time_ratio)."""
    plt = pyplot()
    labels = [l for l in summary[summary["dataset"] == dataset]["label"].unique() if l != BASELINE]
    ratios = {l: r for l in labels if (r := compare.time_ratio(summary, dataset, l, BASELINE)[0]) is not None}
    if not ratios:
        return None
    ratios = dict(sorted(ratios.items(), key=lambda item: item[1].estimate))
    figure, axis = plt.subplots(figsize=(6, 0.35 * len(ratios) + 1.2))
    values = [r.estimate for r in ratios.values()]
    errors = [[0 if math.isnan(r.low) else r.estimate - r.low for r in ratios.values()],
              [0 if math.isnan(r.high) else r.high - r.estimate for r in ratios.values()]]
    axis.barh(list(ratios), values, xerr=errors, color="C0", ecolor="0.2", capsize=3)
    axis.axvline(1.0, color="C3", linewidth=0.8)
    for y, value in enumerate(values):
        axis.text(value, y, f" {value:.2f}x", va="bottom", fontsize=8)
    axis.set_xlabel("training time / the standard VAE's (95% interval over seeds; runs timed alike only)")
    axis.set_title(f"{dataset}: training time (RQ3)")
    return save(figure, out / f"time_{dataset}")


def plot_dispersion(summary: pd.DataFrame, curves: pd.DataFrame, out: Path, styles: dict[str, dict]) -> str | None:
    """RQ1: encoder feature dispersion against test KL / MI / AU (one point per run), and over
    training on the validation sentences."""
    data = summary.dropna(subset=["feature_cosine_distance"])
    if data.empty:
        return None
    plt = pyplot()
    figure, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    for axis, (metric, title) in zip(axes[:3], (("kl", "test KL"), ("mi", "test MI"), ("au", "test AU"))):
        for label, group in data.groupby("label"):
            axis.scatter(group["feature_cosine_distance"], group[metric], label=label, color=styles[label]["color"],
                         marker=styles[label]["marker"], s=26, alpha=0.8)
        axis.set_xlabel("h(x) mean pairwise cosine distance")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(-0.85, 1.0))
    axis = axes[3]
    for label in (l for l in sorted(curves["label"].unique()) if l in (BASELINE, POOLING) or l.startswith(POOLING)):
        group = curves[curves["label"] == label].groupby("epoch")["valid_feature_cosine_distance"].mean()
        axis.plot(group.index, group.values, label=label, **styles[label])
    axis.set_xlabel("epoch")
    axis.set_title("h(x) cosine distance over training\n(validation, mean over datasets)", fontsize=10)
    axis.legend(fontsize=7)
    axis.grid(alpha=0.3)
    figure.suptitle("RQ1: encoder feature dispersion and collapse (left three: test sentences, one point per run; "
                    "right: validation sentences during training)")
    return save(figure, out / "dispersion")


def mean_of(summary: pd.DataFrame, dataset: str, label: str, column: str) -> float:
    values = summary[(summary["dataset"] == dataset) & (summary["label"] == label)][column]
    return float(values.mean()) if len(values) else math.nan


def first_true(rules) -> str:
    """The sentence of the first (condition, sentence) pair whose condition holds: a verdict
    read as a table, top to bottom (the last condition is True)."""
    return next(sentence for condition, sentence in rules if condition)


def collapsed(kl: float, mi: float, au: float) -> bool:
    """No active unit, and either no KL or no information in it (a method may force KL up: free bits)."""
    return au < 1 and min(kl, mi) < COLLAPSED_KL


def answers(summary: pd.DataFrame, profile: str, stated: Sequence[verdicts.Family] = ()) -> list[str]:
    """The report's verdicts, family first, then one paragraph per research question, from the
    numbers (:mod:`bench.analysis.verdicts`: paired by seed, Holm over the stated family). On a
    dataset whose experiment named its confirmatory seeds (``stated``: the experiments' own
    families), the answers are judged over those seeds alone, and give no verdict before all are in."""
    scale = "at paper scale" if profile == "paper" else f"on the reduced '{profile}' profile, not at paper scale"
    family = report_family(summary, seeds_of={scope: seeds for f in stated for scope, seeds in f.seeds_of.items()})
    text = [" ".join(filter(None, (family.statement(), verdicts.clean_note(summary), verdicts.estimator_note(summary))))]
    text.append(rq1(summary, scale))
    for dataset in sorted(summary["dataset"].unique()):
        text += dataset_answers(summary, dataset, scale, family)
        text += scale_evidence(summary, dataset)
    return text


def report_family(summary: pd.DataFrame, name: str = "the report's verdicts",
                  seeds_of: dict[str, Sequence[int]] | None = None) -> verdicts.Family:
    """The confirmatory questions of a comparison, per dataset: every remedy − the VAE on MI (RQ2),
    max pooling − the previous best on NLL (RQ3), max pooling − the VAE on NLL (RQ4); Holm over all.
    Runs with 3x the training and refined-posterior rows are left to the scale evidence.
    ``seeds_of``: per dataset, the seeds an experiment named in advance (judged over those alone)."""
    comparisons = []
    for dataset in sorted(summary["dataset"].unique()):
        rows = summary[summary["dataset"] == dataset]
        comparisons += [verdicts.Comparison(dataset, label, BASELINE, "mi", "RQ2") for label in remedies(rows)
                        if not label.endswith(LONGER_SUFFIX) and results_layer.REFINED_SUFFIX not in label]
        pooling = pooling_label(rows)
        best = next((l for l in PREVIOUS_BEST if l in set(rows["label"])), None)
        if pooling in set(rows["label"]):
            if best:
                comparisons.append(verdicts.Comparison(dataset, pooling, best, "nll", "RQ3"))
            comparisons.append(verdicts.Comparison(dataset, pooling, BASELINE, "nll", "RQ4"))
    return verdicts.Family(name, comparisons).judge(
        {d: summary[summary["dataset"] == d] for d in summary["dataset"].unique()}, seeds_of or {})


def exploratory(rows: pd.DataFrame, label: str, reference: str, metric: str) -> str:
    """An uncorrected paired comparison, labelled as exploration."""
    outcome = verdicts.uncorrected(rows, label, reference, metric)
    digits = 3 if metric == "feature_cosine_distance" else 2
    return f"{outcome.cell(digits)} (exploratory: paired by seed, uncorrected)"


def rq1(summary: pd.DataFrame, scale: str) -> str:
    """RQ1 compares methods, never runs pooled across methods: per dataset, max pooling − the last
    state (the VAE) on the encoder features' dispersion (mean pairwise cosine distance of h(x)) and
    on MI, paired by seed (exploratory)."""
    data = summary.dropna(subset=["feature_cosine_distance"])
    data = data[data["uses_latent"].astype(bool) & ~data["label"].str.contains(results_layer.REFINED_SUFFIX, regex=False)]
    parts = []
    for dataset in sorted(data["dataset"].unique()):
        rows = data[data["dataset"] == dataset]
        pooling = pooling_label(rows)
        if pooling not in set(rows["label"]) or BASELINE not in set(rows["label"]):
            continue
        # the means beside the paired difference are over the seeds it pairs, not each side's own
        paired_seeds = set(rows[rows["label"] == pooling]["seed"]) & set(rows[rows["label"] == BASELINE]["seed"])
        rows = rows[rows["seed"].isin(paired_seeds)]
        parts.append(f"{dataset}: h(x) cosine distance max pooling {mean_of(rows, dataset, pooling, 'feature_cosine_distance'):.3f} "
                     f"vs last state {mean_of(rows, dataset, BASELINE, 'feature_cosine_distance'):.3f}, difference "
                     f"{exploratory(rows, pooling, BASELINE, 'feature_cosine_distance')}; MI difference "
                     f"{exploratory(rows, pooling, BASELINE, 'mi')}" + peaks_read(rows, dataset, pooling))
    if not parts:
        return "**RQ1.** No dataset has runs of max pooling and the VAE with dispersion measurements."
    return (f"**RQ1 (dispersion and collapse, {scale}).** Does pooling disperse the encoder's features, and does "
            "more information go with it? " + "; ".join(parts) + ".")


def peaks_read(rows: pd.DataFrame, dataset: str, pooling: str) -> str:
    """What max pooling reads, where the records measured it: the share of h(x)'s dimensions whose
    maximum falls on the start or the end token in most sentences (Bosc & Vincent's study)."""
    if "max_at_start" not in rows or rows[rows["label"] == pooling]["max_at_start"].isna().all():
        return ""
    start, end = (mean_of(rows, dataset, pooling, column) for column in ("max_at_start", "max_at_end"))
    return (f"; max pooling reads the start token in {start:.0%} of its dimensions and the end token in {end:.0%} "
            "(the token where a dimension peaks in most sentences)")


def pooling_label(rows: pd.DataFrame) -> str:
    """The label of the max-pooling runs among ``rows`` (``pooling`` unless only ``pooling_max`` is there)."""
    return next((label for label in POOLING_LABELS if label in set(rows["label"])), POOLING)


def remedies(rows: pd.DataFrame) -> list[str]:
    """Labels of the runs that are collapse remedies: models with a latent, other than the VAE."""
    return [l for l in rows[rows["uses_latent"].astype(bool)]["label"].unique() if l != BASELINE]


def scale_evidence(summary: pd.DataFrame, dataset: str) -> list[str]:
    """For each remedy that stayed collapsed: is it the scale? Its ``<label>_3x`` run answers."""
    get = lambda label, column: mean_of(summary, dataset, label, column)  # noqa: E731
    labels = [l for l in remedies(summary[summary["dataset"] == dataset])
              if not l.endswith(LONGER_SUFFIX) and "[" not in l]
    stuck = [l for l in labels if collapsed(get(l, "kl"), get(l, "mi"), get(l, "au"))]
    if not stuck:
        return []
    parts, without_longer = [], []
    for label in stuck:
        longer = label + LONGER_SUFFIX
        if math.isnan(get(longer, "kl")):
            without_longer.append(label)
            parts.append(f"{label}: collapsed (KL {get(label, 'kl'):.2f}, MI {get(label, 'mi'):.2f}, AU "
                         f"{get(label, 'au'):.1f})")
        else:
            still = collapsed(get(longer, "kl"), get(longer, "mi"), get(longer, "au"))
            seeds = int(((summary["dataset"] == dataset) & (summary["label"] == longer)).sum())
            parts.append(f"{label}: collapsed (KL {get(label, 'kl'):.2f}, MI {get(label, 'mi'):.2f}); with 3x the "
                         f"training ({'one seed' if seeds == 1 else f'{seeds} seeds'}) KL {get(longer, 'kl'):.2f}, "
                         f"MI {get(longer, 'mi'):.2f}, AU {get(longer, 'au'):.1f}: "
                         + ("still collapsed" if still else "it escapes collapse")
                         + (" (one seed: an indication, not a verdict)" if seeds == 1 else
                            ", so longer training at this scale does not rescue it" if still
                            else ", so the short schedule, not the method, held it back"))
        refined = f"{label}{results_layer.REFINED_SUFFIX}"
        if not math.isnan(get(refined, "kl")) and not collapsed(get(refined, "kl"), get(refined, "mi"), get(refined, "au")):
            parts[-1] += (f"; but scored with its SVI-refined posterior it keeps information (MI {get(refined, 'mi'):.2f}, "
                          f"AU {get(refined, 'au'):.1f}): the amortised encoder collapsed, the model did not")
    # The caveat is said once for every remedy it applies to, not repeated after each.
    which = ("it" if len(stuck) == 1 else "these" if without_longer == stuck else ", ".join(without_longer))
    caveat = (f" No 3x-training run (`<label>{LONGER_SUFFIX}`) of {which} in this experiment, so scale and "
              "implementation are not told apart here." if without_longer else "")
    return [f"**Remedies that stayed collapsed ({dataset}).** " + "; ".join(parts) + "." + caveat]


def rq2_table(summary: pd.DataFrame, dataset: str, family: verdicts.Family) -> str:
    """Markdown: per remedy, its MI and AU, the confirmatory ΔMI verdict, and exploratory ΔAU, ΔKL."""
    from tabulate import tabulate
    rows = summary[summary["dataset"] == dataset]
    body = []
    for label in [BASELINE, *remedies(rows)]:
        if label not in set(rows["label"]):
            continue
        outcome = family.outcome(dataset, label, "mi")
        shown = [label, int((rows["label"] == label).sum()), f"{mean_of(rows, dataset, label, 'mi'):.2f}",
                 f"{mean_of(rows, dataset, label, 'au'):.1f}", f"{mean_of(rows, dataset, label, 'kl'):.2f}"]
        if label == BASELINE:
            body.append(shown + ["(reference)", "", ""])
            continue
        extra = [verdicts.paired(rows, label, BASELINE, metric) for metric in ("au", "kl")]
        body.append(shown + [outcome.cell() if outcome else "not in the family (3x training or refined q)",
                             *[f"{t.estimate:+.1f} [{t.low:+.1f}, {t.high:+.1f}]" if t and not r else (r or "")
                               for t, r in extra]])
    return tabulate(body, headers=["method", "n", "MI", "AU", "KL", "ΔMI vs VAE (verdict, Holm)",
                                   "ΔAU (exploratory)", "ΔKL (exploratory)"], tablefmt="github", disable_numparse=True)


RQ2_ANSWERS = {  # max pooling − the VAE on MI, by verdict
    "higher": "pooling keeps more information than the VAE, as the paper claims",
    "lower": "pooling keeps less information than the VAE, unlike the paper's claim",
    "equivalent": "pooling keeps the same information as the VAE within the margin: it does not prevent collapse here",
    "below margin": "pooling's gain is distinguishable but below the margin: not a prevention of collapse",
    "not distinguishable": "pooling's information is not distinguishable from the VAE's"}


def dataset_answers(summary: pd.DataFrame, dataset: str, scale: str, family: verdicts.Family | None = None) -> list[str]:
    """RQ2-RQ4 for one dataset, each verdict read off ``family`` (paired by seed, Holm-corrected)."""
    family = family or report_family(summary)
    rows = summary[summary["dataset"] == dataset]
    get = lambda label, column: mean_of(summary, dataset, label, column)  # noqa: E731
    text = []
    pooling = pooling_label(rows)
    if BASELINE in set(rows["label"]) and len(remedies(rows)):
        outcome = family.outcome(dataset, pooling, "mi")
        if outcome is None:
            answer = "not answerable here"
        elif not outcome.tested:
            answer = f"no verdict ({outcome.cell()})"
        else:
            answer = RQ2_ANSWERS[outcome.verdict]
        text.append(f"**RQ2 ({dataset}; paired by seed, Holm over the family).** Which remedies keep more "
                    f"information than the VAE, {scale}; max pooling: {answer}.\n\n" + rq2_table(summary, dataset, family))
    best = next((l for l in PREVIOUS_BEST if l in set(rows["label"])), None)
    if best and pooling in set(rows["label"]):
        nll = family.question(dataset, "RQ3")
        ratio, condition = compare.time_ratio(summary, dataset, pooling, best)
        if ratio is None:
            timing = f"Training times: no ratio, {condition}; no speed verdict."
        else:
            faster = first_true(((ratio.high < 1, "faster, as claimed"), (ratio.low > 1, "slower, unlike the claim"),
                                 (math.isnan(ratio.low), "not distinguishably faster (one seed: no interval)"),
                                 (True, "not distinguishably faster or slower (not 'as fast': no equivalence test)")))
            timing = (f"Training time pooling / {best} = {ratio.estimate:.2f}"
                      + ("" if math.isnan(ratio.low) else f" [{ratio.low:.2f}, {ratio.high:.2f}]")
                      + f" ({condition}): pooling is {faster} (Welch's interval on log training hours over "
                      "seeds, between runs timed under one condition; exploratory).")
        text.append(f"**RQ3 ({dataset}).** Test NLL pooling {get(pooling, 'nll'):.2f} vs {best} {get(best, 'nll'):.2f}; "
                    f"pooling − {best} (nats): {nll.cell() if nll else 'not tested'} (the paper claims they match: "
                    "'equivalent' would need the two one-sided tests within 0.5 nats). " + timing)
    if pooling in set(rows["label"]) and BASELINE in set(rows["label"]):
        nll = family.question(dataset, "RQ4")
        without_latent = rows[~rows["uses_latent"].astype(bool)]
        lm_note = lm_comparison(summary, dataset, without_latent["label"].iloc[0]) if len(without_latent) else ""
        text.append(f"**RQ4 ({dataset}).** Pooling − standard VAE test NLL (nats): "
                    f"{nll.cell() if nll else 'not tested'} (lower is better).{lm_note}")
    return text


def lm_comparison(summary: pd.DataFrame, dataset: str, lm_label: str) -> str:
    """Whether the best latent-variable model beats the language model on test NLL (exploratory)."""
    lm_rows = summary[(summary["dataset"] == dataset) & (summary["label"] == lm_label)]
    rows = summary[(summary["dataset"] == dataset) & summary["uses_latent"].astype(bool)
                   & summary["iw_sentences"].isin(set(lm_rows["iw_sentences"]))]  # scored on the LM's sentences
    means = rows.groupby("label")["nll"].mean()
    if not len(means):
        return ""
    best = str(means.idxmin())
    both = summary[(summary["dataset"] == dataset) & summary["label"].isin([best, lm_label])]
    return (f" Against the LSTM language model ({mean_of(summary, dataset, lm_label, 'nll'):.2f}), the best latent "
            f"model, {best}, differs by {exploratory(both, best, lm_label, 'nll')}.")


def stated_entries(experiment) -> list[tuple[str, str, str]]:
    """The experiment's family as (label, reference, metric): MI where the entry names no metric."""
    return [(entry[0], entry[1], entry[2] if len(entry) > 2 else "mi") for entry in experiment.family]


def stated_family(summary: pd.DataFrame, experiment) -> verdicts.Family:
    """The experiment's own family (``family`` in its file, stated before its runs), judged on
    the experiment's datasets over its confirmatory seeds where it names them."""
    datasets = stated_datasets(summary, experiment)
    family = verdicts.Family(f"the stated comparisons ({', '.join(datasets)})",
                             [verdicts.Comparison(d, a, b, metric, "stated") for a, b, metric in stated_entries(experiment)
                              for d in datasets],
                             confirmatory=bool(experiment.confirmatory_seeds))
    return family.judge({d: summary[summary["dataset"] == d] for d in datasets}, experiment.confirmatory_seeds or None)


def stated_datasets(summary: pd.DataFrame, experiment) -> list[str]:
    """The experiment's datasets that ``summary`` holds runs of: where its family is judged (a
    results folder may hold another experiment's runs on other datasets, with a family of its own)."""
    return sorted(set(experiment.datasets) & set(summary["dataset"]))


def stated_section(summary: pd.DataFrame, experiment, family: verdicts.Family) -> list[str]:
    """The stated family's statement and one verdict table."""
    datasets = stated_datasets(summary, experiment)
    from tabulate import tabulate
    rows = [[f"{a} − {b}", metric, *[family.outcome(d, a, metric, b).cell() for d in datasets]]
            for a, b, metric in stated_entries(experiment)]
    return [family.statement(), tabulate(rows, headers=["comparison", "metric", *datasets], tablefmt="github",
                                         disable_numparse=True)]


SHOWN_SENTENCES = 3  # reconstructions shown per method in the report


def samples_section(found: list[dict]) -> list[str]:
    """Per dataset, the same test sentences' reconstructions (greedy, from the posterior mean) side by
    side for every method, from each method's lowest seed that kept samples: collapse can be read
    off the text (one decoding for every input). Records made before samples were kept show nothing."""
    from tabulate import tabulate
    from bench.core.samples import distinct_reconstructions
    lines = []
    kept = sorted((r for r in found if r.get("samples")), key=lambda r: (r["dataset"], r["label"], r["seed"]))
    for dataset in sorted({r["dataset"] for r in kept}):
        chosen = {}
        for record in (r for r in kept if r["dataset"] == dataset):
            chosen.setdefault(record["label"], record)
        inputs = [item["input"] for item in next(iter(chosen.values()))["samples"]["reconstructions"][:SHOWN_SENTENCES]]
        rows = [[f"{label} (seed {record['seed']}; {distinct_reconstructions(record['samples'])} distinct)",
                 *[item["from_mean"] for item in record["samples"]["reconstructions"][:SHOWN_SENTENCES]]]
                for label, record in chosen.items()]
        lines += [f"### {dataset}", "", "Greedy decodings from the posterior mean of the first test sentences (the "
                  "input is the header); 'distinct': how many different texts 5 inputs decode to (1: z is ignored). "
                  "`python -m bench samples RUN_DIR` prints prior samples and an interpolation too.", "",
                  tabulate(rows, headers=["method", *inputs], tablefmt="github", disable_numparse=True), ""]
    return (["## What the models write", "", *lines]) if lines else []


def retrained_samples_section(found: list[dict], samples: Path, profile: str) -> list[str]:
    """The text of runs in ``samples`` of the same configurations (same run id) as ``found``,
    retrained because ``found`` predates text samples; says how many of them reproduce the
    table's run exactly (test NLL, KL and AU equal), since a rerun on another host may not."""
    _, retrained = load_runs(samples, profile)
    originals = {r["run_id"]: r["metrics"]["test"] for r in found}  # the run id hashes the whole configuration
    shown = [r for r in retrained if r["run_id"] in originals]
    section = samples_section(shown)
    if not section:
        return []
    exact = sum(all(r["metrics"]["test"].get(k) == originals[r["run_id"]].get(k) for k in ("nll", "kl", "au"))
                for r in shown)
    same = ("all reproduce their table run exactly (test NLL, KL and AU equal), so the text is theirs"
            if exact == len(shown) else
            f"{exact} of {len(shown)} reproduce their table run exactly (test NLL, KL and AU equal); the others "
            "differ (another host or commit), so their text is of a run like the table's, not the same one")
    return section[:2] + [f"The tables' records predate text samples; these come from runs of the same configurations "
                          f"(same run ids) trained again in `{samples}` (commit "
                          f"{(shown[0]['code'].get('commit') or '?')[:10]}): {same}.", ""] + section[2:]


def write_report(results: Path, profile: str | None, out: Path | None = None, experiments: Sequence = (),
                 force: bool = False, samples: Path | None = None) -> Path:
    """``results/REPORT.md`` (or ``out``) from the finished records; with ``experiments`` (loaded
    experiment files that state a ``family``) the report opens with each family's verdicts, each
    judged on its own experiment's datasets (one study run per dataset, in one folder). An
    existing report built from more runs or another profile is kept unless ``force``. ``samples``:
    a results folder of runs of the same configurations trained later (records made before text
    samples were kept have none) whose text the report shows instead, saying so."""
    summary, found = load_runs(results, profile)
    profile = summary["profile"].iloc[0]
    out = out or Path(results)
    files.refuse_to_replace_with_less(out / "REPORT.md", {"runs": len(found), "profile": profile}, force)
    figures = out / "figures"
    curves = curve_frame(found)
    hardware = ", ".join(sorted(summary["hardware"].unique()))
    env = found[0]["environment"]
    lines = [f"# collapse-bench report ({profile} profile)", "",
             f"Generated by `python -m bench report` from {len(found)} finished run records. Hardware: {hardware} "
             f"({env['hardware']['processor']}, {env['hardware']['cpu_count_logical']} logical CPUs, "
             f"{env['hardware']['memory_gb']} GB); torch {env['packages']['torch']}.", ""]
    if profile != "paper":
        lines += [f"**Reduced profile '{profile}'**: smaller model, less data and training than the papers. "
                  "These numbers are not comparable with the published ones shown beside them.", ""]
    families = []
    for experiment in experiments:
        datasets = stated_datasets(summary, experiment)
        if not experiment.family or not datasets:
            continue
        families.append(stated_family(summary, experiment))
        lines += [f"## The stated comparisons ({', '.join(datasets)})", "",
                  *[f"{p}\n" for p in stated_section(summary, experiment, families[-1])]]
    lines += grid.grid_section(summary, families, figures)
    lines += ["## Answers to the research questions", "", *[f"{p}\n" for p in answers(summary, profile, families)]]
    measured = compare.aggregate(compare.load_records(results, sorted(summary["dataset"].unique()), profile))
    published = compare.load_published(sorted(summary["dataset"].unique()), include_unverified=False)
    lines += samples_section(found) if samples is None else retrained_samples_section(found, samples, profile)
    lines += ["## Tables", ""]
    lines.append(compare.render("md", sorted(summary["dataset"].unique()), measured, published, profile,
                                compare.ALL_COLUMNS, "compact"))
    lines += ["## Figures", ""]
    styles = line_styles([*curves["label"], *summary["label"]])
    name = plot_dispersion(summary, curves, figures, styles)
    if name:
        lines += ["### RQ1: encoder feature dispersion", "", f"![dispersion](figures/{name})", ""]
    for dataset in sorted(summary["dataset"].unique()):
        lines += [f"### {dataset}", ""]
        lines += [f"![curves](figures/{n})" for n in plot_curves(curves, dataset, figures, styles)]
        time_figure = plot_time(summary, dataset, figures)
        if time_figure:
            lines += ["", f"![time](figures/{time_figure})"]
        lines.append("")
    if (figures / "lagging.json").is_file():
        from bench.cli.diagnose import summary_lines
        lagging = records.load_record(figures / "lagging.json", fix="delete it; ./run_all.sh makes it again")
        lines += ["### Lagging-encoder diagnostic (synthetic data, He et al. 2019 Figure 2)", "",
                  "![lagging](figures/lagging.png)", "",
                  f"Made by `python -m bench diagnose lagging` (profile `{lagging['profile']}`, "
                  f"{lagging['sample']} training sentences). Per panel: correlation and slope of the encoder mean "
                  "E_q[z|x] on the model's true posterior mean E_p[z|x], the spread (std) of each, and KL and MI on "
                  "those sentences. Tracking the posterior = correlation near 1; collapsed = encoder spread near 0.",
                  "", *summary_lines(lagging["traces"]), ""]
    if (out / "SCALE.md").is_file():  # bench.analysis.scale's section: where each remedy starts to work, per axis
        lines += ["## Scale study", "", "Per axis (sentence length, training data, the paper's domain, model "
                  "width, encoder initialisation): where each remedy and pooling start to separate from the VAE, with the research "
                  "questions answered at every point: [SCALE.md](SCALE.md), made by `python -m bench scale`.", ""]
    report = out / "REPORT.md"
    files.write_generated(report, "\n".join(lines), {"runs": len(found), "profile": profile}, force=True)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=records.DEFAULT_RESULTS, metavar="DIR")
    parser.add_argument("--profile", metavar="NAME", help="which profile's records (needed when several exist)")
    parser.add_argument("--experiment", type=Path, metavar="FILE", action="append", default=[],
                        help="an experiment file whose `family` (stated before its runs) the report judges first, "
                             "on the file's datasets over its `confirmatory_seeds`; repeat it for a study run as "
                             "one file per dataset")
    parser.add_argument("--out", type=Path, metavar="DIR", help="where REPORT.md and figures/ go (default: --results)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing REPORT.md even when the new one has fewer runs or another profile")
    parser.add_argument("--samples", type=Path, metavar="DIR",
                        help="show the text samples of runs of the same configurations in DIR (retrained with "
                             "samples kept) instead of those of --results")
    args = parser.parse_args(argv)
    from bench.cli.sweep import load_experiment
    experiments = [load_experiment(path) for path in args.experiment]
    print(f"report: {write_report(args.results, args.profile, args.out, experiments, args.force, args.samples)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
