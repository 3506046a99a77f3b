"""The reported metrics, declared once: name, header, which direction is better, digits,
meaning, and whether a model without a latent variable (the language model) has it.

``bench.cli.compare`` (tables), ``bench.analysis.report`` (the report) and the progress lines of
``bench.cli.train`` and ``bench.cli.sweep`` read this list; a new metric is added here (and
computed in :func:`bench.core.metrics.evaluate`), nowhere else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Mapping


@dataclass(frozen=True)
class MetricSpec:
    name: str  # key in a record's metrics ("test", "valid") and in the tables' columns
    header: str
    better: Literal["min", "max"] | None  # None: reported, never "best" (KL: more is not better)
    digits: int
    description: str
    latent_only: bool = False  # meaningless without z: shown as "-" and never best for such rows
    vs_reference: bool = False  # the tables show the difference to the reference method with an interval


TEST_METRICS = (
    MetricSpec("nll", "NLL", "min", 2, "importance-weighted test NLL (nats/sentence; Burda et al. 2016)",
               vs_reference=True),
    MetricSpec("kl", "KL", None, 2, "KL(q(z|x) || p(z)) (nats/sentence)", latent_only=True),
    MetricSpec("mi", "MI", "max", 2, "mutual information I_q(x; z) over the whole test split (nats; aggregate "
               "posterior over every test sentence, bench.core.metrics.mutual_information)", latent_only=True,
               vs_reference=True),
    MetricSpec("au", "AU", "max", 1, "active units, Var_x E_q[z_d] > 0.01 (Burda et al. 2016)", latent_only=True,
               vs_reference=True),
    MetricSpec("ppl", "PPL", "min", 2, "perplexity exp(NLL / predicted tokens)"),
)
TRAIN_HOURS = MetricSpec("train_hours", "train h", "min", 3, "training wall-clock hours (evaluation excluded)")
BY_NAME = {m.name: m for m in (*TEST_METRICS, TRAIN_HOURS)}


def spec(name: str) -> MetricSpec:
    return BY_NAME[name]


def summary_line(values: Mapping[str, float], prefix: str = "") -> str:
    """``NLL 40.47  KL 0.00  MI 0.01 ±0.00  AU 0`` from a mapping that holds (some of) the test
    metrics (keys with ``prefix``, e.g. ``valid_``); missing ones are left out. MI carries twice
    its standard error (``mi_se``), and an estimate above the KL by more than that is flagged."""
    parts = []
    se = values.get(prefix + "mi_se")
    for metric in TEST_METRICS:
        value = values.get(prefix + metric.name)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            digits = 0 if metric.name == "au" and float(value).is_integer() else metric.digits
            part = f"{metric.header} {value:.{digits}f}"
            if metric.name == "mi" and se is not None and not math.isnan(se):
                part += f" ±{2 * se:.{digits}f}"
            if metric.name == "mi" and values.get(prefix + "mi_above_kl"):
                part += " (ABOVE KL: estimate broken)"
            parts.append(part)
    return "  ".join(parts)
