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

import pandas as pd

from bench.core import records
from bench.core import results as results_layer
from bench.core.errors import BenchError, run_cli
from bench.core.plots import pyplot, save
from bench.core.stats import Interval, mean_interval, welch_difference
from bench.cli import compare

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
        raise BenchError(f"no finished records under {results}" + (f" for profile '{profile}'" if profile else "")
                         + "; run ./run_all.sh or python -m bench sweep first")
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


def describe(interval, digits: int = 2) -> str:
    """``+1.23 [+0.50, +1.96], distinguishable at 95%`` (or why it is not)."""
    if math.isnan(interval.estimate):
        return "not comparable (scored on different test sentences)"
    if math.isnan(interval.low):
        return f"{interval.estimate:+.{digits}f} (one seed on at least one side: no interval, not distinguishable)"
    verdict = "distinguishable at 95%" if interval.excludes_zero else "not distinguishable at 95%"
    return f"{interval.estimate:+.{digits}f} [{interval.low:+.{digits}f}, {interval.high:+.{digits}f}], {verdict}"


def first_true(rules) -> str:
    """The sentence of the first (condition, sentence) pair whose condition holds: a verdict
    read as a table, top to bottom (the last condition is True)."""
    return next(sentence for condition, sentence in rules if condition)


def above_zero(interval: Interval) -> bool:
    """Distinguishably positive at 95%: the interval lies above 0."""
    return interval.excludes_zero and interval.estimate > 0


def below_zero(interval: Interval) -> bool:
    """Distinguishably negative at 95%: the interval lies below 0."""
    return interval.excludes_zero and interval.estimate < 0


def collapsed(kl: float, mi: float, au: float) -> bool:
    """No active unit, and either no KL or no information in it (a method may force KL up: free bits)."""
    return au < 1 and min(kl, mi) < COLLAPSED_KL


def answers(summary: pd.DataFrame, profile: str) -> list[str]:
    """One paragraph per research question, from the numbers."""
    scale = "at paper scale" if profile == "paper" else f"on the reduced '{profile}' profile, not at paper scale"
    text = []
    text.append(rq1(summary, scale))
    for dataset in sorted(summary["dataset"].unique()):
        text += separated_from_vae(summary, dataset)
        text += dataset_answers(summary, dataset, scale)
        text += scale_evidence(summary, dataset)
    return text


def keeps_information(row) -> bool:
    """A run that uses its latent: an active unit and an MI above the estimator's noise floor."""
    floor = 2 * row["mi_se"] if "mi_se" in row and not math.isnan(row["mi_se"]) else 0.0
    return row["au"] >= 1 and row["mi"] > floor


def rq1(summary: pd.DataFrame, scale: str) -> str:
    """RQ1 as two comparisons with intervals over runs (Welch): the encoder-feature dispersion
    (mean pairwise cosine distance of h(x)) of runs that keep information against collapsed
    runs, and of max pooling against the last state (the VAE) at equal training."""
    data = summary.dropna(subset=["feature_cosine_distance"])
    # the encoder's own posterior only: a refined row's information is SVI's, not its encoder's
    data = data[data["uses_latent"].astype(bool) & ~data["label"].str.contains(results_layer.REFINED_SUFFIX, regex=False)]
    if len(data) < 4:
        return "**RQ1.** Too few runs with dispersion measurements to say anything."
    kept = data.apply(keeps_information, axis=1)
    parts = []
    if kept.sum() >= 2 and (~kept).sum() >= 2:
        gap = welch_difference(data[kept]["feature_cosine_distance"], data[~kept]["feature_cosine_distance"])
        parts.append(f"runs that keep information (AU >= 1 and MI above the noise floor: "
                     f"{', '.join(sorted(set(data[kept]['label'])))}; {int(kept.sum())} runs) have mean cosine distance "
                     f"{data[kept]['feature_cosine_distance'].mean():.3f}, collapsed runs ({int((~kept).sum())}) "
                     f"{data[~kept]['feature_cosine_distance'].mean():.3f}; difference {describe(gap, 3)}"
                     + (": dispersed features go with keeping information here" if gap.excludes_zero and gap.estimate > 0
                        else ""))
    else:
        parts.append(f"{int(kept.sum())} of {len(data)} runs keep information: too few on one side for a comparison")
    for dataset in sorted(data["dataset"].unique()):
        rows = data[data["dataset"] == dataset]
        pooled, last = (rows[rows["label"] == label]["feature_cosine_distance"]
                        for label in (pooling_label(rows), BASELINE))
        if len(pooled) and len(last):
            gap = welch_difference(pooled, last)
            parts.append(f"{dataset}: max pooling {pooled.mean():.3f} vs last state (vae) {last.mean():.3f}, "
                         f"difference {describe(gap, 3)}"
                         + (": pooling disperses the encoder features, as the paper's mechanism says"
                            if gap.excludes_zero and gap.estimate > 0 else ""))
    return (f"**RQ1 (dispersion and collapse; test: Welch's 95% interval over runs, {scale}).** " + "; ".join(parts)
            + ".")


def pooling_label(rows: pd.DataFrame) -> str:
    """The label of the max-pooling runs among ``rows`` (``pooling`` unless only ``pooling_max`` is there)."""
    return next((label for label in POOLING_LABELS if label in set(rows["label"])), POOLING)


def remedies(rows: pd.DataFrame) -> list[str]:
    """Labels of the runs that are collapse remedies: models with a latent, other than the VAE."""
    return [l for l in rows[rows["uses_latent"].astype(bool)]["label"].unique() if l != BASELINE]


def mi_floor(rows: pd.DataFrame) -> float:
    """Twice the largest MI noise floor among ``rows`` (0 where none was measured)."""
    noise = rows["mi_se"].max() if "mi_se" in rows else math.nan
    return 0.0 if math.isnan(noise) else 2 * float(noise)


def separated_labels(rows: pd.DataFrame) -> tuple[list[str], list[str]] | None:
    """Of the remedies among ``rows`` (one dataset, or one setting) with at least 2 seeds, those
    that keep information the VAE does not (their 95% MI t-interval over seeds does not overlap
    the VAE's and lies above the MI noise floor) and the others; None with fewer than 2 VAE seeds."""
    mi = {label: mean_interval(group["mi"].astype(float)) for label, group in rows.groupby("label", sort=False)}
    if BASELINE not in mi or mi[BASELINE].n < 2:
        return None
    others = [l for l in remedies(rows) if mi[l].n >= 2]
    apart = [l for l in others if not mi[BASELINE].overlaps(mi[l]) and mi[l].low > mi_floor(rows)]
    return apart, [l for l in others if l not in apart]


def separated_from_vae(summary: pd.DataFrame, dataset: str) -> list[str]:
    """Which methods keep information the VAE does not: MI 95% intervals over seeds that do not overlap."""
    rows = summary[summary["dataset"] == dataset]
    split = separated_labels(rows)
    if split is None:
        return []
    apart, rest = split
    mi = lambda label: mean_interval(rows[rows["label"] == label]["mi"].astype(float))  # noqa: E731
    au = lambda label: mean_of(summary, dataset, label, "au")  # noqa: E731
    vae, floor = mi(BASELINE), mi_floor(rows)
    shown = ", ".join(f"{l} (MI {mi(l).estimate:.2f} ± {mi(l).half_width:.2f}, AU {au(l):.1f})" for l in apart)
    return [f"**Separated from the VAE ({dataset}).** VAE MI {vae.estimate:.2f} [{vae.low:.2f}, {vae.high:.2f}], "
            f"AU {au(BASELINE):.1f}, KL {mean_of(summary, dataset, BASELINE, 'kl'):.2f}; MI noise floor ±{floor:.2f} "
            f"(twice the estimator's standard deviation for a model without information). Methods whose 95% MI "
            f"interval over seeds does not overlap the VAE's and lies above the noise floor: {shown or 'none'}; the "
            f"others ({', '.join(rest) or 'none'}) keep no information distinguishable "
            "from the VAE's (test: non-overlapping 95% t-intervals over seeds)."]


def scale_evidence(summary: pd.DataFrame, dataset: str) -> list[str]:
    """For each remedy that stayed collapsed: is it the scale? Its ``<label>_3x`` run answers."""
    get = lambda label, column: mean_of(summary, dataset, label, column)  # noqa: E731
    labels = [l for l in remedies(summary[summary["dataset"] == dataset])
              if not l.endswith(LONGER_SUFFIX) and "[" not in l]
    stuck = [l for l in labels if collapsed(get(l, "kl"), get(l, "mi"), get(l, "au"))]
    if not stuck:
        return []
    parts = []
    for label in stuck:
        longer = label + LONGER_SUFFIX
        if math.isnan(get(longer, "kl")):
            parts.append(f"{label}: collapsed (KL {get(label, 'kl'):.2f}, MI {get(label, 'mi'):.2f}, AU "
                         f"{get(label, 'au'):.1f}); no 3x-training "
                         "run in this experiment, so scale and implementation are not told apart here")
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
    return [f"**Remedies that stayed collapsed ({dataset}).** " + "; ".join(parts) + "."]


def dataset_answers(summary: pd.DataFrame, dataset: str, scale: str) -> list[str]:
    """RQ2-RQ4 for one dataset; every "distinguishable" comes from a 95% interval (bench.core.stats)."""
    get = lambda label, column: mean_of(summary, dataset, label, column)  # noqa: E731
    change = lambda a, b, metric: (compare.difference(summary, dataset, a, b, metric)  # noqa: E731
                                   or Interval(math.nan, math.nan, math.nan, 0))
    text = []
    pooling = pooling_label(summary[summary["dataset"] == dataset])
    vae_kl, vae_au, pool_kl, pool_au = get(BASELINE, "kl"), get(BASELINE, "au"), get(pooling, "kl"), get(pooling, "au")
    if not math.isnan(vae_kl) and not math.isnan(pool_kl):
        mi = change(pooling, BASELINE, "mi")
        vae_collapsed = collapsed(vae_kl, get(BASELINE, "mi"), vae_au)
        pool_collapsed = collapsed(pool_kl, get(pooling, "mi"), pool_au)
        verdict = first_true((
            (vae_collapsed and not pool_collapsed and above_zero(mi), "pooling prevented collapse where the VAE collapsed"),
            (pool_collapsed and vae_collapsed, "both collapsed: pooling did not prevent collapse here"),
            (not vae_collapsed and not pool_collapsed, "neither collapsed"),
            (pool_collapsed, "the VAE kept its latent but pooling collapsed"),
            (True, "pooling kept more KL, but its MI gain over the VAE is not distinguishable at 95%")))
        text.append(f"**RQ2 ({dataset}; test: Welch's 95% interval over seeds).** VAE: KL {vae_kl:.2f}, MI {get(BASELINE, 'mi'):.2f}, AU {vae_au:.1f}; "
                    f"max pooling: KL {pool_kl:.2f}, MI {get(pooling, 'mi'):.2f}, AU {pool_au:.1f}; MI pooling − VAE "
                    f"{describe(mi)}: {verdict}, {scale}. The paper claims pooling prevents collapse.")
    best = next((l for l in PREVIOUS_BEST if not math.isnan(get(l, "nll"))), None)
    if best and not math.isnan(get(pooling, "nll")):
        ratio, condition = compare.time_ratio(summary, dataset, pooling, best)
        if ratio is None:
            timing = f"Training times: no ratio, {condition}; no speed verdict."
        else:
            faster = first_true(((ratio.high < 1, "faster, as claimed"), (ratio.low > 1, "slower, unlike the claim"),
                                 (math.isnan(ratio.low), "not distinguishably faster (one seed: no interval)"),
                                 (True, "not distinguishably faster or slower")))
            timing = (f"Training time pooling / {best} = {ratio.estimate:.2f}"
                      + ("" if math.isnan(ratio.low) else f" [{ratio.low:.2f}, {ratio.high:.2f}]")
                      + f" ({condition}): pooling is {faster} (test: Welch's interval on log training hours over "
                      "seeds, between runs timed under one condition).")
        nll = change(pooling, best, "nll")
        verdict = first_true(((above_zero(nll), "pooling is worse than the previous best, unlike the paper's claim"),
                              (below_zero(nll), "pooling is better than the previous best"),
                              (True, "the NLLs are not distinguishable (the paper claims they match)")))
        text.append(f"**RQ3 ({dataset}).** Test NLL pooling {get(pooling, 'nll'):.2f} vs {best} {get(best, 'nll'):.2f}; "
                    f"pooling − {best} (nats) {describe(nll)}: {verdict} (test: Welch's 95% interval over seeds). "
                    + timing)
    if not math.isnan(get(pooling, "nll")) and not math.isnan(get(BASELINE, "nll")):
        nll = change(pooling, BASELINE, "nll")
        without_latent = summary[(summary["dataset"] == dataset) & ~summary["uses_latent"].astype(bool)]
        lm_label = without_latent["label"].iloc[0] if len(without_latent) else None
        lm_note = lm_comparison(summary, dataset, lm_label) if lm_label else ""
        verdict = first_true(((below_zero(nll), "a better log-likelihood from the simple change, as claimed"),
                              (above_zero(nll), "a worse log-likelihood, unlike the claim"),
                              (True, "no distinguishable change")))
        text.append(f"**RQ4 ({dataset}; test: Welch's 95% interval over seeds).** Pooling − standard VAE test NLL "
                    f"(nats) {describe(nll)}: {verdict}.{lm_note}")
    return text


def lm_comparison(summary: pd.DataFrame, dataset: str, lm_label: str) -> str:
    """Whether any latent-variable model beats the language model on test NLL, said plainly."""
    lm_rows = summary[(summary["dataset"] == dataset) & (summary["label"] == lm_label)]
    rows = summary[(summary["dataset"] == dataset) & summary["uses_latent"].astype(bool)
                   & summary["iw_sentences"].isin(set(lm_rows["iw_sentences"]))]  # scored on the LM's sentences
    means = rows.groupby("label")["nll"].mean()
    if not len(means):
        return ""
    best = str(means.idxmin())
    gap = compare.difference(summary, dataset, best, lm_label, "nll") or Interval(math.nan, math.nan, math.nan, 0)
    beaten = gap.excludes_zero and gap.estimate < 0
    return (f" Against the LSTM language model ({mean_of(summary, dataset, lm_label, 'nll'):.2f}), the best latent "
            f"model, {best}, differs by {describe(gap)}: "
            + ("it beats the language model." if beaten else "no VAE here beats the language model."))


def write_report(results: Path, profile: str | None, out: Path | None = None) -> Path:
    summary, found = load_runs(results, profile)
    profile = summary["profile"].iloc[0]
    out = out or Path(results)
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
    lines += ["## Answers to the research questions", "", *[f"{p}\n" for p in answers(summary, profile)]]
    measured = compare.aggregate(compare.load_records(results, sorted(summary["dataset"].unique()), profile))
    published = compare.load_published(sorted(summary["dataset"].unique()), include_unverified=False)
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
    report.write_text("\n".join(lines))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=records.DEFAULT_RESULTS, metavar="DIR")
    parser.add_argument("--profile", metavar="NAME", help="which profile's records (needed when several exist)")
    args = parser.parse_args(argv)
    print(f"report: {write_report(args.results, args.profile)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
