"""The throughput benchmark runs and writes comparable measurements (speed is never asserted)."""

import json

from bench.cli import perf
from bench.core.loop import cpu_supports_bf16


def test_perf_reports_methods_and_ratios(tmp_path, capsys):
    out = tmp_path / "perf.json"
    perf.main(["--profile", "smoke", "--methods", "vae,pooling", "--steps", "2", "--json", str(out)])
    again = tmp_path / "again.json"
    perf.main(["--profile", "smoke", "--methods", "vae", "--steps", "2", "--baseline", str(out), "--json", str(again),
               "--bf16", "--length", "7"])
    text = capsys.readouterr().out
    assert "profile smoke: embed 16" in text and "vocab 200" in text and "train vs baseline" in text
    measured = json.loads(out.read_text())["measurements"]
    assert set(measured) == {"vae", "pooling"} and all(v["train_tokens_per_s"] > 0 for v in measured.values())
    bf16 = json.loads(again.read_text())["measurements"]["vae"]
    assert bf16["iw_bf16_sentences_per_s"] > 0 and bf16["iw_bf16_max_nll_change"] >= 0 and "bf16 IW speed" in text
    if cpu_supports_bf16():
        assert bf16["train_bf16_tokens_per_s"] > 0
    else:  # no bfloat16 LSTM kernel on this CPU: not timed, and the table says why
        assert bf16["train_bf16_tokens_per_s"] is None and "no bf16 on this CPU" in text
    assert "of matmul rate" in text
    assert json.loads(again.read_text())["matmul_gflop_per_s"] > 0
    assert json.loads(again.read_text())["shape"]["length"] == 7  # the length timed, not the profile's


def test_eval_share_times_both_settings_on_the_real_data(tmp_path, capsys):
    out = tmp_path / "share.json"
    perf.main(["--profile", "smoke", "--eval-share", "synthetic", "--set", "data.synthetic_length=6",
               "--versus", "eval.iw_max_sentences=4", "--json", str(out)])
    rows = json.loads(out.read_text())["eval_share"]
    plain, smaller = rows["data.synthetic_length=6"], rows["+ eval.iw_max_sentences=4"]
    assert smaller["iw_sentences"] == 4 < plain["iw_sentences"]  # --versus adds to --set, --set applies to both
    for row in (plain, smaller):
        evaluation = row["epochs"] * row["validation_s"] + row["test_s"]
        assert row["eval_share"] == evaluation / (row["epochs"] * row["epoch_s"] + evaluation)
    assert "evaluation share of a vae run on synthetic" in capsys.readouterr().out


def test_packing_reports_a_trial_that_never_reports_instead_of_waiting_forever():
    import torch
    rows = perf.measure_packing("no_such_method", "smoke", {}, torch.device("cpu"), steps=2, counts=[2, 1],
                                timeout_s=30)
    assert [row["trials"] for row in rows] == [2, 1]
    assert all(row["error"].startswith("no result within 30 s") for row in rows)


def test_perf_times_sentences_of_the_length_asked_for():
    import torch
    trainer = perf.build_trainer("vae", "smoke", {}, torch.device("cpu"), steps=2, length=37)
    assert {len(s) for s in trainer.corpus.splits["train"]} == {37}
