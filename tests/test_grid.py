"""The encoder x objective section: where each run sits, and its verdicts on known differences."""

import pandas as pd
import pytest

from bench.analysis import grid
from bench.analysis.report import stated_family
from bench.cli.sweep import load_experiment


def test_each_run_is_placed_by_the_encoder_it_reads_with_and_the_objective_that_trains_it():
    assert grid.cell_of("vae", "vae") == (grid.LAST_STATE, grid.PLAIN)
    assert grid.cell_of("kl_anneal", "kl_anneal") == (grid.LAST_STATE, "kl_anneal")
    assert grid.cell_of("pooling_max", "pooling") == ("pooling_max", grid.PLAIN)
    assert grid.cell_of("pooling_mean+free_bits_bv", "pooling+free_bits") == ("pooling_mean", "free_bits_bv")
    assert grid.cell_of("cpvae_max+kl_anneal", "pooling+kl_anneal") == ("cpvae_max", "kl_anneal")
    assert grid.cell_of("beta_vae_0.2", "beta_vae") == (grid.LAST_STATE, "beta_vae_0.2")
    # a label that does not name its parts: the method's names stand in
    assert grid.cell_of("mine", "pooling+beta_vae") == ("pooling", "beta_vae")


def grid_rows(effect_under_annealing: float) -> pd.DataFrame:
    """vae, pooling_max, kl_anneal, pooling_max+kl_anneal over seeds 3-7 (+ an LM and seed 0):
    pooling adds nothing under the plain objective and ``effect_under_annealing`` nats of MI under annealing."""
    rows = []
    for seed in (0, 3, 4, 5, 6, 7):
        noise = 0.01 * (-1) ** seed
        for label, method, mi in (("vae", "vae", 0.0), ("pooling_max", "pooling", noise),
                                  ("kl_anneal", "kl_anneal", 0.5 + noise),
                                  ("pooling_max+kl_anneal", "pooling+kl_anneal",
                                   0.5 + (-3.0 if seed == 0 else effect_under_annealing + 0.01 * seed))):
            rows.append({"label": label, "method": method, "seed": seed, "mi": mi, "au": 10 * mi, "kl": mi + 0.1,
                         "nll": 100.0 - mi, "feature_cosine_distance": 0.5, "max_at_start": float("nan"),
                         "max_at_end": float("nan"), "mi_batch": mi, "train_hours": 0.1, "uses_latent": True})
        rows.append({"label": "lm", "method": "lm", "seed": seed, "mi": float("nan"), "uses_latent": False})
    return pd.DataFrame(rows).assign(dataset="ptb", evaluation="test", clean=True, mi_estimator="aggregate",
                                     iw_sentences=200)


def experiment(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text("profile: smoke\ndatasets: [ptb]\nseeds: [0, 3, 4, 5, 6, 7]\nconfirmatory_seeds: [3, 4, 5, 6, 7]\n"
                    "runs: [vae, {label: pooling_max, method: pooling}, kl_anneal, "
                    "{label: pooling_max+kl_anneal, method: pooling+kl_anneal}, lm]\n"
                    "family: [[pooling_max, vae], [pooling_max+kl_anneal, kl_anneal]]\n")
    return load_experiment(path)


def test_the_grid_section_gives_the_stated_verdict_per_objective_and_the_figure(tmp_path):
    """Max pooling adds 1 nat of MI under annealing (seeds 3-7; seed 0, exploratory, says the
    opposite and must not count) and nothing under the plain objective: the section says so."""
    summary = grid_rows(1.0)
    family = stated_family(summary, experiment(tmp_path))
    lines = grid.grid_section(summary, [family], tmp_path / "figures")
    text = "\n".join(lines)
    assert "## Encoder x objective" in text and "lm" not in grid.grid_frame(summary)["label"].tolist()
    assert "kl_anneal: pooling_max keeps more information than the last state (+1.05 [" in text
    assert "plain: pooling_max keeps the same information as the last state within 0.1 nats" in text
    assert "(exploratory)" not in text.split("**RQ2 per objective")[1]  # both comparisons are stated and confirmatory
    assert (tmp_path / "figures" / "grid_ptb.png").is_file() and (tmp_path / "figures" / "grid_ptb.pdf").is_file()
    cells = text.split("| objective")[1]
    assert "| kl_anneal   | pooling_max" in cells and "| 5   |" in cells and "| 6   |" not in cells  # seed 0 left out
    assert "Seeds 3, 4, 5, 6, 7 only" in text


def test_an_interim_comparison_says_why_it_has_no_verdict(tmp_path):
    summary = grid_rows(1.0)
    summary = summary[~((summary["label"] == "pooling_max+kl_anneal") & (summary["seed"] == 7))]
    text = "\n".join(grid.grid_section(summary, [stated_family(summary, experiment(tmp_path))], tmp_path / "figures"))
    assert "kl_anneal: pooling_max (interim: 4 of 5 confirmatory seeds, no verdict)." in text


def test_a_comparison_the_family_does_not_state_is_labelled_exploration(tmp_path):
    summary = grid_rows(0.0)
    lines = grid.grid_section(summary, [], tmp_path / "figures")
    assert "(exploratory)" in "\n".join(lines)


def test_runs_that_do_not_cross_encoders_with_objectives_get_no_section(tmp_path):
    summary = grid_rows(1.0)
    plain = summary[summary["label"].isin(["vae", "pooling_max", "kl_anneal"])]
    assert grid.grid_section(plain, [], tmp_path / "figures") == []


def test_two_runs_in_one_cell_are_not_a_grid(tmp_path):
    """vae and vae_3x (the same method, longer) share the last state under the plain objective."""
    summary = grid_rows(1.0)
    longer = summary[summary["label"] == "vae"].assign(label="vae_3x")
    assert grid.grid_section(pd.concat([summary, longer]), [], tmp_path / "figures") == []


def test_each_dataset_is_judged_by_the_family_of_its_own_experiment_file(tmp_path):
    """One results folder, two studies (one experiment file per dataset): each family is judged on
    its own file's datasets over its own confirmatory seeds, and each dataset's section says so."""
    ptb = experiment(tmp_path)
    yahoo_path = tmp_path / "yahoo.yaml"
    yahoo_path.write_text("profile: smoke\ndatasets: [yahoo_resplit]\nseeds: [3, 4, 5]\nconfirmatory_seeds: [3, 4, 5]\n"
                          "runs: [vae, {label: pooling_max, method: pooling}, kl_anneal, "
                          "{label: pooling_max+kl_anneal, method: pooling+kl_anneal}]\n"
                          "family: [[pooling_max+kl_anneal, kl_anneal]]\n")
    summary = pd.concat([grid_rows(1.0), grid_rows(0.0).assign(dataset="yahoo_resplit")])
    families = [stated_family(summary, ptb), stated_family(summary, load_experiment(yahoo_path))]
    assert [f.scopes for f in families] == [{"ptb"}, {"yahoo_resplit"}] and families[1].seeds_of == {"yahoo_resplit": (3, 4, 5)}
    text = "\n".join(grid.grid_section(summary, families, tmp_path / "figures"))
    ptb_part, yahoo_part = text.split("### ptb")[1].split("### yahoo_resplit")
    assert "Seeds 3, 4, 5, 6, 7 only" in ptb_part and "Seeds 3, 4, 5 only" in yahoo_part
    assert "kl_anneal: pooling_max keeps more information than the last state (+1.05 [" in ptb_part
    assert "by less than the 0.1-nat margin (+0.04 [+0.01, +0.08], n=3)" in yahoo_part  # seeds 3-5 alone
    assert "plain: pooling_max" in yahoo_part and "(exploratory)" in yahoo_part  # not in Yahoo's family


def test_a_confirmatory_family_gives_no_verdict_before_all_its_seeds_are_in(tmp_path):
    """Seeds 3-7 named, 3 and 4 run: an interim look, not a verdict (and not in Holm's count)."""
    summary = grid_rows(1.0)
    partial = summary[summary["seed"].isin([0, 3, 4])]
    family = stated_family(partial, experiment(tmp_path))
    assert not family.tested
    assert {o.reason for o in family.outcomes} == {"interim: 2 of 5 confirmatory seeds, no verdict"}
    assert stated_family(summary, experiment(tmp_path)).tested  # all five in: judged


def test_a_confirmatory_family_corrects_for_every_comparison_it_stated():
    """Holm's m is every stated comparison, a not-yet-testable one counting as p = 1, for the
    difference tests and the equivalence tests alike. Judged alone, 'higher' has p 0.028 and
    'same' a TOST p of 0.030: verdicts; beside a stated comparison not yet run (m = 2), not."""
    from bench.analysis import verdicts
    spread = (-1.2, 0.9, -0.4, 1.1, -0.3)
    rows = pd.DataFrame([{"label": label, "seed": seed, "mi": mi} for i, seed in enumerate((3, 4, 5, 6, 7))
                         for label, mi in (("vae", 0.0), ("higher", 0.5 + 0.35 * spread[i]),
                                           ("same", 0.02 + 0.07 * spread[i]))]).assign(
        clean=True, mi_estimator="aggregate")

    def judged(labels, confirmatory):
        family = verdicts.Family("f", [verdicts.Comparison("d", label, "vae", "mi") for label in labels],
                                 confirmatory=confirmatory).judge({"d": rows}, (3, 4, 5, 6, 7))
        return {o.comparison.label: o.verdict for o in family.tested}, family

    for label, alone in (("higher", "higher"), ("same", "equivalent")):
        assert judged([label, "not_yet_run"], confirmatory=False)[0] == {label: alone}  # m = 1: the testable
        assert judged([label, "not_yet_run"], confirmatory=True)[0] == {label: "not distinguishable"}  # m = 2
    assert judged(["higher", "same"], confirmatory=False)[0] == {"higher": "not distinguishable",
                                                                 "same": "not distinguishable"}  # m = 2 for both tests
    _, family = judged(["higher", "same", "not_yet_run"], confirmatory=True)
    assert "Holm's correction over all 3 stated (the 1 not yet testable count as p = 1)" in family.statement()
    higher = family.outcome("d", "higher")
    assert higher.adjusted_p == pytest.approx(min(1.0, 3 * higher.test.p))


def test_the_estimator_caption_counts_in_the_right_number_and_gives_one_figure_when_the_errors_agree():
    """One evaluation at 0.0012 nats: '1 evaluation', 'standard error 0.001'; two at 0.0012 and
    0.0061: '2 evaluations', '0.001-0.006' (the figures rounded to 3 places)."""
    from bench.analysis import verdicts
    from bench.core import results as results_layer

    def caption(errors):
        rows = pd.DataFrame({"uses_latent": True, "mi_estimator": results_layer.AGGREGATE, "mi_se": errors})
        return verdicts.estimator_note(rows)

    assert caption([0.0012]).startswith("1 evaluation: MI over the whole test split")
    assert caption([0.0012]).endswith("standard error 0.001 nats")
    assert caption([0.0012, 0.0061]).startswith("2 evaluations: ")
    assert caption([0.0012, 0.0061]).endswith("standard error 0.001-0.006 nats")
    assert [verdicts.counted(n, "point") for n in (0, 1, 2)] == ["0 points", "1 point", "2 points"]
