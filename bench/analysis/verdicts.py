"""Verdicts: methods compared paired by seed, in stated families, with Holm's correction.

Every verdict the report and the scale study draw comes from here, and reads the same way:

* **Paired by seed** (:func:`bench.core.stats.paired_difference`): runs at one seed share their
  data order and their evaluation draws (bench.core.loop.evaluation_rng), so the per-seed
  difference ``label - reference`` cancels both; its t-interval over seeds is the test. Runs are
  never pooled across methods.
* **Only from records a verdict can rest on**: made from committed code (``code.dirty`` false,
  :func:`bench.core.results.clean_tree`), with at least 2 seeds a side, the same MI estimator on
  both sides (``mi_estimator``), and for NLL the same test sentences. Anything else is shown
  with the reason it carries no verdict.
* **A stated family**: the comparisons of a report or a scale axis are listed before the
  results; Holm's correction runs over that family (:func:`bench.core.stats.holm`). A family is
  *confirmatory* only when its experiment file named its seeds in advance
  (``confirmatory_seeds``) and only those seeds are used; otherwise it is *exploratory* (its
  records were seen before the family was written down) and says so, Holm-corrected all the same.
  A confirmatory family's m is every comparison it stated (one not yet testable counts as
  p = 1); a family judged over named seeds tests a comparison only once all are in (else "interim").
* **A practical margin** (:data:`bench.core.stats.MARGINS`): a distinguishable difference
  smaller than it is "below margin", not a verdict; "equivalent" needs the two one-sided tests,
  their p-values Holm-corrected over the family as the differences' are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import pandas as pd

from bench.core import results as results_layer
from bench.core.results import per_seed
from bench.core.stats import MARGINS, PairedTest, equivalence, holm, paired_difference, paired_power, verdict

PLANNED_EFFECT = 0.3  # nats of MI: the effect whose power a family states


@dataclass(frozen=True)
class Comparison:
    """``label - reference`` on ``metric`` among the rows of ``scope`` (a dataset, or a point)."""

    scope: str
    label: str
    reference: str
    metric: str
    question: str = ""  # "RQ2", ...

    @property
    def name(self) -> str:
        return f"{self.label} − {self.reference} ({self.metric}, {self.scope})"


@dataclass
class Outcome:
    comparison: Comparison
    test: PairedTest | None
    reason: str | None  # why there is no test, or None
    adjusted_p: float = math.nan
    verdict: str = "not tested"

    @property
    def tested(self) -> bool:
        return self.test is not None and self.reason is None

    def cell(self, digits: int = 2) -> str:
        """``higher: +0.24 [+0.06, +0.41]`` (Holm-adjusted p in the verdict), or why untested."""
        if not self.tested:
            if self.test is not None and self.test.n == 1:
                return f"one seed ({self.test.estimate:+.{digits}f}): an indication"
            return self.reason or "not tested"
        t = self.test
        return f"{self.verdict}: {t.estimate:+.{digits}f} [{t.low:+.{digits}f}, {t.high:+.{digits}f}], n={t.n}"


def paired(rows: pd.DataFrame, label: str, reference: str, metric: str,
           seeds: Sequence[int] | None = None) -> tuple[PairedTest | None, str | None]:
    """The paired test of ``label - reference`` on ``metric`` among ``rows``, or why there is none."""
    a_runs, b_runs = rows[rows["label"] == label], rows[rows["label"] == reference]
    if seeds is not None:
        a_runs, b_runs = a_runs[a_runs["seed"].isin(seeds)], b_runs[b_runs["seed"].isin(seeds)]
    if not len(a_runs) or not len(b_runs):
        return None, "not run"
    clean = lambda runs: runs[runs["clean"].astype(bool)]  # noqa: E731
    a, b = clean(a_runs), clean(b_runs)
    if not len(a) or not len(b):
        return None, "records from uncommitted code: no verdict"
    if reason := results_layer.incomparable(a, b, metric):
        return None, reason
    test = paired_difference(per_seed(a, label, metric), per_seed(b, reference, metric))
    if test.n == 0:
        return None, "no seed in common (records from committed code)"
    if test.n == 1:
        return test, "one seed: an indication"
    return test, None


@dataclass
class Family:
    """A stated family of comparisons, judged together with Holm's correction."""

    name: str
    comparisons: list[Comparison]
    confirmatory: bool = False
    outcomes: list[Outcome] = field(default_factory=list)
    seeds_of: dict[str, tuple[int, ...]] = field(default_factory=dict)  # per scope, the seeds named (all if absent)

    def judge(self, rows_of: dict[str, pd.DataFrame],
              seeds: Sequence[int] | Mapping[str, Sequence[int]] | None = None) -> "Family":
        """Test every comparison on ``rows_of[scope]``, over ``seeds`` only where given (one list
        for every scope, or a list per scope); Holm over :attr:`size` comparisons. A comparison judged
        over named seeds is tested only once every one of them is in: judging a stated sample
        before all of it is in is an interim look (optional stopping), so it gives no verdict."""
        named = seeds if isinstance(seeds, Mapping) else {c.scope: seeds for c in self.comparisons}
        self.outcomes, self.seeds_of = [], {scope: tuple(s) for scope, s in named.items() if s}
        for comparison in self.comparisons:
            rows, scope_seeds = rows_of.get(comparison.scope), self.seeds_of.get(comparison.scope)
            test, reason = (None, "not run") if rows is None else \
                paired(rows, comparison.label, comparison.reference, comparison.metric, scope_seeds)
            if test is not None and scope_seeds and test.n < len(scope_seeds):
                test, reason = None, f"interim: {test.n} of {len(scope_seeds)} confirmatory seeds, no verdict"
            self.outcomes.append(Outcome(comparison, test, reason))
        tested = [o for o in self.outcomes if o.tested]
        margins = [MARGINS.get(o.comparison.metric, 0.0) for o in tested]
        # a confirmatory family corrects for every comparison it stated: one not yet testable counts
        # as p = 1, so a verdict given before the rest are in can only get stronger as they come
        untested = [1.0] * (self.size - len(tested))
        differences = holm([o.test.p for o in tested] + untested)
        equivalences = holm([equivalence(o.test, m) for o, m in zip(tested, margins)] + untested)
        for outcome, margin, p, p_same in zip(tested, margins, differences, equivalences):
            outcome.adjusted_p = p
            outcome.verdict = verdict(outcome.test, margin, p, p_same)
        return self

    @property
    def size(self) -> int:
        """The m of Holm's correction: every stated comparison in a confirmatory family, the
        testable ones in an exploratory family (whose comparisons follow the records in hand)."""
        return len(self.comparisons) if self.confirmatory else len(self.tested)

    @property
    def scopes(self) -> set[str]:
        return {c.scope for c in self.comparisons}

    @property
    def tested(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.tested]

    def outcome(self, scope: str, label: str, metric: str = "mi", reference: str | None = None) -> Outcome | None:
        """The outcome of ``label`` (against ``reference`` where given) on ``metric`` in ``scope``."""
        return next((o for o in self.outcomes if (o.comparison.scope, o.comparison.label, o.comparison.metric)
                     == (scope, label, metric) and reference in (None, o.comparison.reference)), None)

    def question(self, scope: str, question: str) -> Outcome | None:
        return next((o for o in self.outcomes if (o.comparison.scope, o.comparison.question) == (scope, question)),
                    None)

    def kind(self) -> str:
        return ("confirmatory (seeds named in the experiment file before the runs)" if self.confirmatory else
                "exploratory (the records were seen before this family was stated)")

    def statement(self) -> str:
        """The family, its test, correction and margins, and its power: said before the results."""
        metrics = sorted({c.metric for c in self.comparisons})
        margins = ", ".join(f"{m} {MARGINS[m]:g}" for m in metrics if m in MARGINS)
        untested = len(self.outcomes) - len(self.tested)
        return (f"**Family: {self.name}**, {self.kind()}: {len(self.comparisons)} comparisons "
                f"({len(self.tested)} testable, {untested} not: one seed, too few of the named seeds, not run, "
                f"different estimators or records from uncommitted code). Test: paired t-interval of the per-seed "
                f"difference (runs at one seed share data order and evaluation draws); Holm's correction over "
                f"{self.corrected_over()}; "
                f"a verdict needs the Holm-adjusted p < 0.05 and a difference beyond the margin ({margins}); "
                f"'equivalent' needs the two one-sided tests within it (Holm-adjusted the same way).{self.seed_note()}"
                + (f" {power}" if (power := self.power()) else ""))

    def corrected_over(self) -> str:
        """What Holm's m counts, in words (:attr:`size`)."""
        if self.size == len(self.tested):
            return f"the {self.size} tested"
        return f"all {self.size} stated (the {self.size - len(self.tested)} not yet testable count as p = 1)"

    def seed_note(self) -> str:
        """The seeds named in advance, per scope, where the family is judged over them."""
        if not self.seeds_of:
            return ""
        named = "; ".join(f"{scope} {', '.join(map(str, seeds))}" for scope, seeds in sorted(self.seeds_of.items()))
        return (f" Judged over the seeds named in advance only ({named}); a comparison with fewer of them in is an "
                "interim look and gets no verdict.")

    def power(self, effect: float = PLANNED_EFFECT) -> str:
        """The power of this family to find a true ΔMI of ``effect`` nats (paired_power), from the
        quadratic mean of the per-seed sd of its tested MI differences (the noisy comparisons
        weigh most: a family of mostly exact ties does not make a noisy one look powerful)."""
        spreads = [(o.test.high - o.test.low) / 2 / _t975(o.test.n) * math.sqrt(o.test.n)
                   for o in self.tested if o.comparison.metric == "mi"]
        if not spreads or max(spreads) == 0:
            return ""
        sd = math.sqrt(sum(v * v for v in spreads) / len(spreads))
        seeds = int(pd.Series([o.test.n for o in self.tested]).median())
        power = paired_power(effect, sd, seeds, max(1, self.size), MARGINS["mi"], simulations=4000)
        return (f"Power: with {seeds} seeds and the family's per-seed sd of ΔMI (quadratic mean {sd:.2f} nats), a "
                f"true ΔMI of {effect:g} nats is found with probability {power:.2f}.")


def uncorrected(rows: pd.DataFrame, label: str, reference: str, metric: str) -> Outcome:
    """One paired comparison judged alone (no family, no correction): exploration, to be labelled so."""
    return Family("", [Comparison("", label, reference, metric)]).judge({"": rows}).outcomes[0]


def _t975(n: int) -> float:
    from scipy import stats
    return float(stats.t.ppf(0.975, n - 1))


def verdict_table(family: Family, scopes: Iterable[str], labels: Iterable[str], metric: str = "mi",
                  header: str = "method") -> str:
    """Markdown: a row per label, a column per scope, each cell the outcome of its comparison."""
    from tabulate import tabulate
    scopes, rows = list(scopes), []
    for label in labels:
        cells = []
        for scope in scopes:
            outcome = family.outcome(scope, label, metric)
            cells.append(outcome.cell() if outcome else "")
        if any(cells):
            rows.append([label, *cells])
    return tabulate(rows, headers=[header, *scopes], tablefmt="github", disable_numparse=True)


def clean_note(rows: pd.DataFrame) -> str:
    """One line on the records from uncommitted code among ``rows`` (shown, never judged)."""
    dirty = rows[~rows["clean"].astype(bool)]
    if not len(dirty):
        return ""
    labels = ", ".join(sorted(set(dirty["label"])))
    return (f"{len(dirty)} of {len(rows)} records were made from uncommitted code ({labels}): they are shown in "
            "the tables but carry no verdict.")


def counted(count: int, noun: str) -> str:
    """'1 point', '2 points': a count with its noun in the right number (regular plurals only)."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def estimator_note(rows: pd.DataFrame) -> str:
    """Which MI estimate the rows carry, and its noise: the captions' line."""
    latent = rows[rows["uses_latent"].astype(bool)] if len(rows) else rows
    parts = []
    for estimator, group in latent.groupby("mi_estimator"):
        se = group["mi_se"].astype(float)
        if estimator == results_layer.AGGREGATE:
            spread = dict.fromkeys(f"{value:.3f}" for value in (se.min(), se.max()))  # one figure when they agree
            parts.append(f"{counted(len(group), 'evaluation')}: MI over the whole test split (aggregate posterior over "
                         f"every test sentence), standard error {'-'.join(spread)} nats")
        else:
            parts.append(f"{len(group)} evaluations made before it: He et al.'s per-batch MI (`mi_batch`, capped at log "
                         f"batch), noise sd at MI 0 {se.max():.2f} nats")
    flagged = latent[latent["mi_above_kl"].astype(bool)] if "mi_above_kl" in latent else latent.iloc[0:0]
    if len(flagged):
        parts.append(f"{len(flagged)} MI estimates lie above their KL by more than twice their error ("
                     + ", ".join(f"{r.label} seed {r.seed}" for r in flagged.itertuples()) + "): broken, not information")
    return "; ".join(parts)
