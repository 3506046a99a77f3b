"""Report and figures from real (smoke) records, and the lagging diagnostic end to end."""

import json
import math

import pytest

from bench.core import results as results_layer
from bench.cli.diagnose import lagging, panel_statistics, summary_lines
from bench.analysis.report import answers, write_report
from bench.core.lifecycle import run


def quiet(message):
    pass


def test_report_has_every_question_tables_and_figures(tmp_path, smoke_config):
    results = tmp_path / "results"
    for method in ("vae", "pooling", "lm", "aggressive+kl_anneal"):
        run(smoke_config(method), results, log=quiet)
    report = write_report(results, None)
    text = report.read_text()
    for heading in ("RQ2 (synthetic; test: Welch", "RQ3 (synthetic)", "RQ4 (synthetic; test: Welch", "REDUCED 'smoke' profile"):
        assert heading in text, heading
    # the paragraphs carry the records' numbers, not boilerplate
    found = {r["label"]: r for r in (json.loads(p.read_text()) for p in results.rglob("record.json"))}
    test = {label: r["metrics"]["test"] for label, r in found.items()}
    assert f"VAE: KL {test['vae']['kl']:.2f}, MI {test['vae']['mi']:.2f}" in text
    hours = {label: r["timing"]["train_hours"] for label, r in found.items()}
    compared = [found[label] for label in ("pooling", "aggressive+kl_anneal")]
    if results_layer.timing_problem([results_layer.timing_condition(r) for r in compared],
                                    [r["timing"]["host_speed"] for r in compared]) is None:  # timed alike: a ratio
        assert f"pooling / aggressive+kl_anneal = {hours['pooling'] / hours['aggressive+kl_anneal']:.2f} (" in text
    else:  # this machine was busy while the test ran: no ratio, and the report says why
        assert "Training times: no ratio, timed" in text
    assert f"Against the LSTM language model ({test['lm']['nll']:.2f})" in text
    assert "**RQ1.** Too few runs with dispersion measurements" in text  # 3 runs with an encoder: no correlation
    figures = results / "figures"
    for name in ("curves_synthetic_epoch", "curves_synthetic_time", "dispersion"):
        assert (figures / f"{name}.png").stat().st_size > 5000 and (figures / f"{name}.pdf").is_file()
        assert f"figures/{name}.png" in text
    # the time figure holds only ratios between runs timed alike: none when the machine was busy
    assert ("figures/time_synthetic.png" in text) == (figures / "time_synthetic.png").is_file()


def test_rq2_paragraph_follows_the_numbers(tmp_path, smoke_config):
    import pandas as pd
    summary = pd.DataFrame([
        {"label": "vae", "dataset": "d", "nll": 100.0, "kl": 0.01, "mi": 0.0, "au": 0, "train_hours": 1.0,
         "feature_cosine_distance": 0.1},
        {"label": "pooling", "dataset": "d", "nll": 98.0, "kl": 6.0, "mi": 2.5, "au": 9, "train_hours": 1.1,
         "feature_cosine_distance": 0.5},
        {"label": "aggressive+kl_anneal", "dataset": "d", "nll": 98.2, "kl": 5.0, "mi": 2.9, "au": 7,
         "train_hours": 3.0, "feature_cosine_distance": 0.4}]).assign(uses_latent=True, iw_sentences=200,
                                                                     timing_condition="GPU, 1 trial(s) at once")
    text = " ".join(answers(summary, "paper"))
    assert ("pooling / aggressive+kl_anneal = 0.37 (GPU, 1 trial(s) at once): pooling is not distinguishably faster "
            "(one seed: no interval)") in text
    assert "prevented collapse" not in text and "better log-likelihood" not in text  # one seed: no claim
    assert "one seed on at least one side: no interval, not distinguishable" in text
    seeds = pd.concat([summary.assign(seed=0), summary.assign(seed=1, nll=summary["nll"] + 0.1)])
    text = " ".join(answers(seeds, "paper"))
    assert "pooling prevented collapse where the VAE collapsed" in text  # MI 2.5 vs 0 in every seed
    assert "distinguishable at 95%" in text
    assert "a better log-likelihood from the simple change, as claimed" in text and "one seed" not in text


def test_lagging_diagnostic_writes_traces_statistics_and_figure(tmp_path):
    traces = lagging(["vae", "pooling"], "smoke", {"train": {"max_epochs": 1}}, iterations=[0, 2], sample=20,
                     out=tmp_path, device="cpu", seed=0, log=quiet)
    assert set(traces) == {"vae", "pooling"}
    assert [f["iteration"] for f in traces["vae"]] == [0, 2, 8] and traces["vae"][-1]["end"]  # 128 / 16 = 8 steps
    saved = json.loads((tmp_path / "lagging.json").read_text())
    panel = saved["traces"]["pooling"][-1]
    assert len(panel["true"]) == 20
    assert {"correlation", "slope", "encoder_spread", "true_spread", "kl", "mi"} <= set(panel)
    assert (tmp_path / "lagging.png").stat().st_size > 5000 and (tmp_path / "lagging.pdf").is_file()
    assert "| vae | 8 (end) |" in "\n".join(summary_lines(traces))


def test_panel_statistics_known_answers():
    true = [-2.0, -1.0, 0.0, 1.0, 2.0]
    on_diagonal = panel_statistics(true, [0.5 * t + 1 for t in true])
    assert on_diagonal["correlation"] == pytest.approx(1.0) and on_diagonal["slope"] == pytest.approx(0.5)
    assert on_diagonal["true_spread"] == pytest.approx(math.sqrt(2.5))
    flat = panel_statistics(true, [0.3] * 5)
    assert flat["encoder_spread"] == 0.0 and flat["correlation"] == 0.0 and flat["slope"] == 0.0


def test_methods_separated_from_the_vae_on_mi():
    import pandas as pd
    from bench.analysis.report import separated_from_vae
    rows = []
    for seed in range(3):
        rows += [{"label": "vae", "dataset": "d", "seed": seed, "nll": 40.0, "kl": 0.01, "mi": 0.01 * seed, "au": 0,
                  "ppl": 1.0, "iw_sentences": 10, "train_hours": 1.0, "hardware": "CPU"},
                 {"label": "aggressive", "dataset": "d", "seed": seed, "nll": 39.0, "kl": 1.2, "mi": 1.0 + 0.1 * seed,
                  "au": 1, "ppl": 1.0, "iw_sentences": 10, "train_hours": 5.0, "hardware": "CPU"},
                 {"label": "beta", "dataset": "d", "seed": seed, "nll": 40.0, "kl": 0.05, "mi": [0.0, 0.5, -0.4][seed],
                  "au": 0, "ppl": 1.0, "iw_sentences": 10, "train_hours": 1.0, "hardware": "CPU"},
                 {"label": "noise", "dataset": "d", "seed": seed, "nll": 40.0, "kl": 0.05, "mi": 0.07 + 0.001 * seed,
                  "au": 0, "ppl": 1.0, "iw_sentences": 10, "train_hours": 1.0, "hardware": "CPU"}]
    text = separated_from_vae(pd.DataFrame(rows).assign(uses_latent=True, mi_se=0.05), "d")[0]
    assert "MI noise floor ±0.10" in text
    assert "lies above the noise floor: aggressive (MI 1.10" in text
    assert "the others (beta, noise) keep no information" in text  # noise: apart from the VAE, but within the floor


def test_scale_evidence_for_collapsed_remedies():
    import pandas as pd
    from bench.analysis.report import scale_evidence
    rows = [{"label": "vae", "dataset": "d", "kl": 0.01, "mi": 0.0, "au": 0},
            {"label": "free_bits", "dataset": "d", "kl": 0.25, "mi": 0.01, "au": 0},  # KL forced up, no information
            {"label": "free_bits_3x", "dataset": "d", "kl": 0.25, "mi": 0.02, "au": 0},
            {"label": "cyclical", "dataset": "d", "kl": 0.01, "mi": 0.0, "au": 0},
            {"label": "cyclical_3x", "dataset": "d", "kl": 0.9, "mi": 0.8, "au": 1},
            {"label": "beta", "dataset": "d", "kl": 0.02, "mi": 0.0, "au": 0},
            {"label": "aggressive", "dataset": "d", "kl": 1.2, "mi": 1.0, "au": 1}]
    text = scale_evidence(pd.DataFrame(rows).assign(uses_latent=True), "d")[0]
    assert "free_bits: collapsed" in text and "still collapsed" in text
    assert "cyclical: collapsed" in text and "it escapes collapse" in text
    assert "beta: collapsed" in text and "no 3x-training run" in text
    assert "aggressive" not in text and "vae:" not in text
