"""The real-text cross-check table of FIDELITY.md: He et al.'s ``text.py`` logs against this
project's records, per epoch, with Welch's interval for the difference.

    python scripts/crosscheck_text.py --label vae --reference-logs ref_vae_t0.log ref_vae_t1.log ref_vae_t2.log

``--reference-logs``: the output of ``python text.py --dataset ptb10k --taskid T ...`` (a scratch
copy of jxhe/vae-lagging-encoder; FIDELITY.md gives the config), one file per seed; their
per-epoch ``VAL --- avg_loss ..., kl ..., mi ...`` and ``N active units`` lines are read.
This side: the records of run ``--label`` under ``--results`` (default results/crosscheck_ptb).
Prints one Markdown row per epoch and quantity: reference seeds, this project's seeds,
difference (this project - reference) [95% Welch interval].
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.core.stats import welch_difference  # noqa: E402

VALIDATION = re.compile(r"VAL --- avg_loss: ([\d.]+), kl: ([\d.-]+), mi: ([\d.-]+)")
ACTIVE = re.compile(r"(\d+) active units")
QUANTITIES = ("-ELBO", "KL", "MI", "AU")


def reference_epochs(log: Path) -> list[tuple[float, ...]]:
    """(-ELBO, KL, MI, AU) after each epoch; the AU line follows each VAL line in text.py."""
    text = log.read_text()
    return [(float(elbo), float(kl), float(mi), int(au))
            for (elbo, kl, mi), au in zip(VALIDATION.findall(text), ACTIVE.findall(text))]


def project_epochs(results: Path, label: str) -> list[list[tuple[float, ...]]]:
    runs = [json.loads(p.read_text()) for p in sorted(results.glob(f"*/*/{label}/*/record.json"))]
    return [[(c["valid_elbo_nll"], c["valid_kl"], c["valid_mi"], c["valid_au"]) for c in r["curves"]]
            for r in sorted(runs, key=lambda r: r["seed"])]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", required=True)
    parser.add_argument("--reference-logs", type=Path, nargs="+", required=True)
    parser.add_argument("--results", type=Path, default=Path("results/crosscheck_ptb"))
    args = parser.parse_args()
    reference = [reference_epochs(log) for log in args.reference_logs]
    ours = project_epochs(args.results, args.label)
    epochs = min(len(runs) for runs in (*reference, *ours))
    for epoch in range(epochs):
        for index, name in enumerate(QUANTITIES):
            b = [runs[epoch][index] for runs in reference]
            a = [runs[epoch][index] for runs in ours]
            show = (lambda v: f"{v:.0f}") if name == "AU" else (lambda v: f"{v:.2f}")
            d = welch_difference(a, b)
            print(f"| epoch {epoch + 1}: {name} | {', '.join(map(show, b))} | {', '.join(map(show, a))} | "
                  f"{d.estimate:+.2f} [{d.low:+.2f}, {d.high:+.2f}] |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
