"""One Markdown row per finished run under a results folder: test NLL, KL, MI, AU, encoder
feature dispersion, training minutes, epochs and the largest validation AU during training
(the per-run view of a calibration; ``bench.cli.compare`` aggregates over seeds).

    python scripts/records_table.py results/scale_calibration
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    print("| run | seed | test NLL | KL | MI | AU | h(x) cos-dist | train min | epochs | max valid AU |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for path in sorted(Path(sys.argv[1]).glob("*/*/*/*/record.json")):
        record = json.loads(path.read_text())
        if record.get("status") != "finished":
            continue
        test = record["metrics"]["test"]
        print(f"| {record['label']} | {record['seed']} | {test['nll']:.2f} | {test['kl']:.2f} | {test['mi']:.2f} | "
              f"{test['au']} | {test.get('feature_cosine_distance', float('nan')):.3f} | "
              f"{record['timing']['train_seconds'] / 60:.1f} | {record['epochs']} | "
              f"{max(c.get('valid_au', 0) for c in record['curves'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
