"""The scale study's section and figure from hand-made records along one axis."""

import json
import re

import pytest

from bench.analysis import scale
from bench.core.errors import BenchError

EXPERIMENT = """\
profile: cpu
datasets: [synthetic]
seeds: [0, 1, 2]
points:
  short: {data: {synthetic_length: 10}}
  long: {data: {synthetic_length: 40}}
runs:
  - vae
  - {label: pooling_max, method: pooling, settings: {pooling: {pooling: max}}}
  - aggressive
"""


def write_record(results, label, point, seed, mi, au, dispersion, hours=1.0):
    folder = results / "cpu" / "synthetic" / f"{label}@{point}" / f"seed{seed}-{abs(hash((label, point))) % 10**6:06d}"
    folder.mkdir(parents=True)
    test = {"nll": 40.0 - mi, "kl": mi + 0.05, "mi": mi, "au": au, "ppl": 30.0, "iw_sentences": 200,
            "iw_samples": 100, "mi_noise": 0.02, "feature_cosine_distance": dispersion, "feature_variance": 0.1,
            "mu_variance": 0.1}
    record = {"label": f"{label}@{point}", "method": label.split("_")[0], "dataset": "synthetic", "profile": "cpu",
              "seed": seed, "status": "finished", "metrics": {"test": test}, "curves": [{"valid_kl": mi}],
              "timing": {"train_hours": hours, "train_cpu_share": 1.0}, "concurrent_trials": 1,
              "environment": {"hardware": {"torch_threads": 1, "gpu": None}}}
    (folder / "record.json").write_text(json.dumps(record))


def test_scale_section_finds_where_a_remedy_starts_to_work(tmp_path):
    experiment, results = tmp_path / "scale_toy.yaml", tmp_path / "results"
    experiment.write_text(EXPERIMENT)
    for seed in range(3):
        noise = 0.01 * seed
        for point in ("short", "long"):
            write_record(results, "vae", point, seed, noise, 0, 0.001)
            write_record(results, "pooling_max", point, seed, noise, 0, 0.2 + noise)  # dispersed, yet collapsed
        write_record(results, "aggressive", "short", seed, 0.01 + noise, 0, 0.01)  # no information yet
        write_record(results, "aggressive", "long", seed, 1.0 + noise, 1, 0.5, hours=4.0)  # keeps it here
    out = tmp_path / "out"
    text = scale.write_scale_report([(experiment, results)], out).read_text()
    assert "## toy: data.synthetic_length" in text and "18 of 18 runs finished" in text
    assert ("- **aggressive**: first separates at long; short: does not (MI 0.02 ± 0.02), "
            "long: separates (MI 1.01 ± 0.02).") in text
    assert "- **vae** (the reference), MI per point: short 0.01 ± 0.02 (floor ±0.04); long 0.01 ± 0.02" in text
    assert ("- **pooling_max** (max pooling, the paper's method): separates at no point tested "
            "(the largest tested: long)") in text
    assert re.search(r"\| long +\| aggressive +\| 3 +\| 1\.06 ± 0\.02 ", text)  # KL: mean ± t-interval half-width
    assert "**RQ2 (synthetic long; test: Welch" in text and "both collapsed: pooling did not prevent collapse" in text
    assert "Separated from the VAE (synthetic long)" in text
    assert (out / "figures" / "scale_toy.png").stat().st_size > 10_000


def test_missing_runs_and_points_are_said(tmp_path):
    experiment, results = tmp_path / "scale_toy.yaml", tmp_path / "results"
    experiment.write_text(EXPERIMENT)
    write_record(results, "vae", "short", 0, 0.0, 0, 0.001)
    text = scale.write_scale_report([(experiment, results)], tmp_path / "out").read_text()
    assert "1 of 18 runs finished" in text and re.search(r"\| long +\| aggressive +\| 0 +\| not run yet", text)
    # a run with its own points is neither expected nor listed at the others
    experiment.write_text(EXPERIMENT.replace("  - aggressive", "  - {label: aggressive, method: aggressive, points: [short]}"))
    text = scale.write_scale_report([(experiment, results)], tmp_path / "out").read_text()
    assert "1 of 15 runs finished" in text and "(aggressive only at short)" in text
    assert re.search(r"\| short +\| aggressive +\| 0 +\| not run yet", text)
    assert not re.search(r"\| long +\| aggressive ", text)
    empty = scale.write_scale_report([(experiment, tmp_path / "nothing")], tmp_path / "out2").read_text()
    assert "No finished runs yet" in empty
    no_points = tmp_path / "flat.yaml"
    no_points.write_text("profile: cpu\ndatasets: [synthetic]\nruns: [vae]\n")
    with pytest.raises(BenchError, match="has no points"):
        scale.main([f"{no_points}={results}"])
    with pytest.raises(BenchError, match="EXPERIMENT=RESULTS"):
        scale.main([str(experiment)])
