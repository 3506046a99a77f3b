"""Report and figures from real (smoke) records, and the lagging diagnostic end to end."""

import json
import math
import re

import pytest

from bench.core.errors import BenchError
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
    for heading in ("**Family: the report's verdicts**", "RQ2 (synthetic; paired by seed, Holm over the family)",
                    "RQ3 (synthetic)", "RQ4 (synthetic)", "REDUCED 'smoke' profile"):
        assert heading in text, heading
    # the paragraphs carry the records' numbers, not boilerplate
    found = {r["label"]: r for r in (json.loads(p.read_text()) for p in results.rglob("record.json"))}
    test = {label: r["metrics"]["test"] for label, r in found.items()}
    assert re.search(rf"\| vae +\| 1 +\| {test['vae']['mi']:.2f} +\| {test['vae']['au']:.1f} +\| {test['vae']['kl']:.2f} ", text)
    hours = {label: r["timing"]["train_hours"] for label, r in found.items()}
    compared = [found[label] for label in ("pooling", "aggressive+kl_anneal")]
    if results_layer.timing_problem([results_layer.timing_condition(r) for r in compared],
                                    [r["timing"]["host_speed"] for r in compared]) is None:  # timed alike: a ratio
        assert f"pooling / aggressive+kl_anneal = {hours['pooling'] / hours['aggressive+kl_anneal']:.2f} (" in text
    else:  # this machine was busy while the test ran: no ratio, and the report says why
        assert "Training times: no ratio, timed" in text
    assert f"Against the LSTM language model ({test['lm']['nll']:.2f})" in text
    assert "**RQ1 (dispersion and collapse" in text
    assert "higher:" not in text and "lower:" not in text  # one seed (or uncommitted code): no verdict
    figures = results / "figures"
    for name in ("curves_synthetic_epoch", "curves_synthetic_time", "dispersion"):
        assert (figures / f"{name}.png").stat().st_size > 5000 and (figures / f"{name}.pdf").is_file()
        assert f"figures/{name}.png" in text
    # the time figure holds only ratios between runs timed alike: none when the machine was busy
    assert ("figures/time_synthetic.png" in text) == (figures / "time_synthetic.png").is_file()


def summary_rows(seeds=(0,), clean=True, **changes):
    import pandas as pd
    rows = []
    for seed in seeds:
        rows += [{"label": "vae", "dataset": "d", "seed": seed, "nll": 100.0 + 0.1 * seed, "kl": 0.01, "mi": 0.0,
                  "au": 0, "train_hours": 1.0, "feature_cosine_distance": 0.1},
                 {"label": "pooling", "dataset": "d", "seed": seed, "nll": 98.0 + 0.1 * seed * seed, "kl": 6.0,
                  "mi": 2.5 + 0.05 * seed, "au": 9, "train_hours": 1.1, "feature_cosine_distance": 0.5},
                 {"label": "aggressive+kl_anneal", "dataset": "d", "seed": seed, "nll": 98.2, "kl": 5.0,
                  "mi": 2.9, "au": 7, "train_hours": 3.0, "feature_cosine_distance": 0.4}]
    return pd.DataFrame(rows).assign(uses_latent=True, iw_sentences=200, mi_estimator="aggregate", mi_se=0.01,
                                     mi_above_kl=False, clean=clean, timing_condition="GPU, 1 trial(s) at once",
                                     **changes)


def test_rq2_paragraph_follows_the_numbers():
    text = " ".join(answers(summary_rows(), "paper"))
    assert ("pooling / aggressive+kl_anneal = 0.37 (GPU, 1 trial(s) at once): pooling is not distinguishably faster "
            "(one seed: no interval)") in text
    assert "as the paper claims" not in text and "higher:" not in text  # one seed: no claim
    assert "one seed (+2.50): an indication" in text
    text = " ".join(answers(summary_rows(seeds=(0, 1, 2)), "paper"))
    assert "pooling keeps more information than the VAE, as the paper claims" in text  # MI 2.5 vs 0 in every seed
    assert "higher: +2.55 [" in text and "Holm" in text
    assert "Pooling − standard VAE test NLL (nats): lower: -1.93 [-2.22, -1.65], n=3" in text  # -2.0, -2.0, -1.8
    dirty = " ".join(answers(summary_rows(seeds=(0, 1, 2), clean=False), "paper"))
    assert "records from uncommitted code: no verdict" in dirty and "as the paper claims" not in dirty


def test_answers_withhold_a_verdict_until_every_named_seed_is_in():
    """An experiment named seeds 0-4 for dataset d; with seeds 0-2 in, the research questions are
    an interim look (no verdict, out of Holm's count), as the experiment's own family is."""
    from bench.analysis.verdicts import Family
    named = Family("stated", [], confirmatory=True, seeds_of={"d": (0, 1, 2, 3, 4)})
    family, rq1, *questions = answers(summary_rows(seeds=(0, 1, 2)), "paper", [named])
    assert "Judged over the seeds named in advance only (d 0, 1, 2, 3, 4)" in family
    interim = " ".join(questions)  # RQ2-RQ4 (RQ1 is exploration, labelled so)
    assert "max pooling: no verdict (interim: 3 of 5 confirmatory seeds, no verdict)" in interim
    assert "as the paper claims" not in interim and "higher:" not in interim and "lower:" not in interim
    assert "NLL (nats): interim: 3 of 5 confirmatory seeds, no verdict" in interim
    judged = " ".join(answers(summary_rows(seeds=(0, 1, 2, 3, 4, 9)), "paper", [named]))
    assert "pooling keeps more information than the VAE, as the paper claims" in judged
    assert "higher: +2.60 [" in judged and ", n=5" in judged  # seed 9, not named, is left out


def test_rq1_means_are_over_the_seeds_its_difference_pairs():
    """The VAE has a seed pooling lacks: the 'vs' means and the paired difference use seeds 0-1 alike."""
    import pandas as pd
    rows = summary_rows(seeds=(0, 1))
    extra = summary_rows(seeds=(2,)).query("label == 'vae'").assign(feature_cosine_distance=0.9)
    rq1 = answers(pd.concat([rows, extra]), "paper")[1]
    assert "h(x) cosine distance max pooling 0.500 vs last state 0.100, difference" in rq1
    assert "+0.400 [+0.400, +0.400], n=2" in rq1


def test_family_verdicts_are_paired_corrected_and_need_the_margin():
    import pandas as pd
    from bench.analysis.report import report_family
    rows = []
    for seed in range(3):
        shared = [0.3, -0.2, 0.1][seed]  # this seed's evaluation noise, in every method's MI
        rows += [{"label": "vae", "seed": seed, "mi": shared, "au": 0},
                 {"label": "aggressive", "seed": seed, "mi": shared + 1.0 + 0.1 * seed, "au": 1},
                 {"label": "beta", "seed": seed, "mi": shared + [0.0, 0.5, -0.4][seed], "au": 0},
                 {"label": "small", "seed": seed, "mi": shared + 0.03 + 0.001 * seed, "au": 0},
                 {"label": "batch", "seed": seed, "mi": shared + 1.0, "au": 1, "mi_estimator": "batch"}]
    frame = pd.DataFrame(rows).assign(dataset="d", nll=40.0, kl=1.0, uses_latent=True, iw_sentences=10, clean=True)
    frame["mi_estimator"] = frame["mi_estimator"].fillna("aggregate")
    family = report_family(frame)
    verdict = {o.comparison.label: (o.verdict if o.tested else o.reason) for o in family.outcomes}
    assert verdict == {"aggressive": "higher", "beta": "not distinguishable", "small": "below margin",
                       "batch": "MI estimated differently on the two sides"}
    assert "Holm's correction over the 3 tested" in family.statement()


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
    assert "beta: collapsed" in text and "No 3x-training run (`<label>_3x`) of beta in this experiment" in text
    assert "aggressive" not in text and "vae:" not in text
    # Said once for all the remedies it applies to, not after each one.
    without = pd.DataFrame([r for r in rows if r["label"] in ("vae", "beta", "cyclical")]).assign(uses_latent=True)
    text = scale_evidence(without, "d")[0]
    assert text.count("not told apart") == 1 and "run (`<label>_3x`) of these in" in text


def test_an_experiments_stated_family_is_judged_over_its_confirmatory_seeds(tmp_path):
    """The family in the experiment file, over its confirmatory seeds only: the exploratory seeds
    (here with a large, opposite difference) never enter it."""
    import pandas as pd
    from bench.analysis.report import stated_family, stated_section
    from bench.cli.sweep import load_experiment
    path = tmp_path / "grid.yaml"
    path.write_text("profile: smoke\ndatasets: [d]\nseeds: [0, 3, 4, 5]\nconfirmatory_seeds: [3, 4, 5]\n"
                    "runs: [vae, {label: pooling_max, method: pooling}]\nfamily: [[pooling_max, vae]]\n")
    rows = []
    for seed in (0, 3, 4, 5):
        rows += [{"label": "vae", "seed": seed, "mi": 0.1 * seed},
                 {"label": "pooling_max", "seed": seed, "mi": 0.1 * seed + (-5.0 if seed == 0 else 1.0 + 0.01 * seed)}]
    summary = pd.DataFrame(rows).assign(dataset="d", uses_latent=True, clean=True, mi_estimator="aggregate")
    experiment = load_experiment(path)
    statement, table = stated_section(summary, experiment, stated_family(summary, experiment))
    assert "confirmatory (seeds named in the experiment file before the runs)" in statement
    assert "higher: +1.04 [" in table and "n=3" in table
    with pytest.raises(BenchError, match="family: each entry is \\[label, reference\\]"):
        path.write_text(path.read_text().replace("[[pooling_max, vae]]", "[[pooling_max, lm]]"))
        load_experiment(path)


def test_a_stated_comparison_may_name_its_metric(tmp_path):
    """[label, reference, nll] is judged on NLL beside the same pair on MI; a metric no verdict is drawn on is refused."""
    import pandas as pd
    from bench.analysis.report import stated_family, stated_section
    from bench.cli.sweep import load_experiment
    path = tmp_path / "grid.yaml"
    path.write_text("profile: smoke\ndatasets: [d]\nseeds: [3, 4, 5]\nconfirmatory_seeds: [3, 4, 5]\n"
                    "runs: [vae, {label: pooling_max, method: pooling}]\n"
                    "family: [[pooling_max, vae], [pooling_max, vae, nll]]\n")
    rows = []
    for seed in (3, 4, 5):
        rows += [{"label": "vae", "seed": seed, "mi": 0.0, "nll": 100.0 + seed},
                 {"label": "pooling_max", "seed": seed, "mi": 0.01 * (-1) ** seed, "nll": 98.0 + seed + 0.01 * seed}]
    summary = pd.DataFrame(rows).assign(dataset="d", uses_latent=True, clean=True, mi_estimator="aggregate",
                                        iw_sentences=200)
    experiment = load_experiment(path)
    family = stated_family(summary, experiment)
    _, table = stated_section(summary, experiment, family)
    assert "| pooling_max − vae | nll      | lower: -1.96 [" in table and "| pooling_max − vae | mi       | equivalent" in table
    with pytest.raises(BenchError, match="family: metric 'nl' in .*did you mean 'nll'"):
        path.write_text(path.read_text().replace("vae, nll]", "vae, nl]"))
        load_experiment(path)


def test_a_report_is_never_replaced_by_one_from_fewer_runs_or_another_profile(tmp_path, smoke_config):
    results = tmp_path / "results"
    run(smoke_config("vae"), results, log=quiet)
    run(smoke_config("pooling"), results, log=quiet)
    report = write_report(results, None)
    stamped = report.read_text()
    assert '<!-- generated: {"profile": "smoke", "runs": 2} -->' in stamped
    fewer = tmp_path / "fewer"
    run(smoke_config("vae"), fewer, log=quiet)
    with pytest.raises(BenchError, match=r"would be replaced by less \(runs 2 -> 1\)"):
        write_report(fewer, None, out=results)
    assert report.read_text() == stamped
    write_report(fewer, None, out=results, force=True)
    assert '"runs": 1' in report.read_text()


def test_the_report_shows_each_methods_reconstructions_side_by_side(tmp_path, smoke_config):
    from bench.analysis.report import samples_section
    results = tmp_path / "results"
    found = [run(smoke_config(method), results, log=quiet) for method in ("vae", "lm")]
    text = "\n".join(samples_section(found))
    first = found[0]["samples"]["reconstructions"][0]
    assert "## What the models write" in text and first["input"] in text and first["from_mean"] in text
    assert "| lm (seed 0; 1 distinct)" in text  # a model without a latent writes one text for every input
    assert samples_section([{**found[0], "samples": None}]) == []  # older records: nothing to show


def test_samples_come_from_retrained_runs_of_the_same_configuration_only(tmp_path, smoke_config):
    """Records made before samples were kept show the text of runs of the same configuration
    (same run id) trained later; a run of another configuration never stands in."""
    import json
    old, retrained = tmp_path / "old", tmp_path / "retrained"
    record = run(smoke_config("vae"), old, log=quiet)
    path = next(old.rglob("record.json"))
    path.write_text(json.dumps({key: value for key, value in json.loads(path.read_text()).items() if key != "samples"}))
    run(smoke_config("vae"), retrained, log=quiet)
    run(smoke_config("vae", model={"latent_dim": 3}), retrained, log=quiet)  # another configuration
    text = write_report(old, None, samples=retrained).read_text()
    assert "trained again" in text and record["samples"]["reconstructions"][0]["from_mean"] in text
    assert "all reproduce their table run exactly" in text  # the same machine and code: the same run
    assert text.count("| vae (seed 0;") == 1  # the same configuration's run alone
    assert "## What the models write" not in write_report(old, None, force=True).read_text()
