"""The GPU check script works before a GPU is there: its --smoke mode runs every stage on a CPU."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_script(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *arguments], cwd=ROOT, capture_output=True, text=True, timeout=2400)


def test_gpu_check_smoke_runs_every_stage_and_writes_its_files(tmp_path):
    done = run_script("scripts/gpu_check.py", "run", str(tmp_path), "--smoke")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    statuses = {stage["name"]: stage["status"] for stage in summary["stages"]}
    assert statuses["preflight"] == statuses["perf"] == statuses["packing"] == "ok"
    assert statuses["short_training"] == statuses["aggressive"] == "ok"
    preflight = json.loads((tmp_path / "preflight.json").read_text())["checks"]
    assert {name: check["status"] for name, check in preflight.items() if name != "bf16_dtypes"} == {
        "train_mode": "ok", "double_backward": "ok", "no_tf32": "ok", "resume_across_devices": "ok", "bitwise": "ok"}
    assert preflight["bitwise"]["detail"].endswith("identical")  # a CPU is deterministic
    assert statuses["reference"] in ("ok", "skipped")  # skipped without a copy of the reference's code
    perf = json.loads((tmp_path / "perf.json").read_text())
    assert set(perf["measurements"]) == {"vae", "pooling", "aggressive", "sa_vae"}
    assert all(m["iw_bf16_sentences_per_s"] > 0 for m in perf["measurements"].values())
    packing = json.loads((tmp_path / "packing.json").read_text())["packing"]
    assert [row["trials"] for row in packing] == [1, 2] and all(row["total_tokens_per_s"] > 0 for row in packing)
    runs = {**json.loads((tmp_path / "short_training.json").read_text()),
            **json.loads((tmp_path / "aggressive.json").read_text())}
    assert set(runs) == {"vae", "pooling", "aggressive"}
    for run in runs.values():
        assert run["status"] == "ok" and run["test"]["nll"] > 0 and "nll_per_sentence" not in run["test"]
        assert [row["epoch"] for row in run["epochs"]] == [1, 2]
        assert {"valid_kl", "valid_mi", "valid_au", "valid_feature_cosine_distance", "train_tokens_per_s"} <= set(
            run["epochs"][0])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["gpu_check.log", "summary.json", "preflight.json", "perf.json", "packing.json", "short_training.json",
         "aggressive.json"]
        + (["speed_vs_reference.json"] if statuses["reference"] == "ok" else []))


def test_the_preflight_finds_a_training_step_in_eval_mode(monkeypatch):
    """The check that would have caught perf's eval-mode leak: a step that runs in eval mode fails it."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import torch
    import gpu_preflight
    from bench.core.loop import Trainer
    original = Trainer.step_once

    def leaky(self, batch):
        self.model.eval()
        return self.method.train_step(self.context, batch)
    monkeypatch.setattr(Trainer, "step_once", leaky)
    results = gpu_preflight.run_checks(torch.device("cpu"), log=lambda m: None)
    assert results["train_mode"]["status"] == "failed" and "in eval mode" in results["train_mode"]["detail"]
    monkeypatch.setattr(Trainer, "step_once", original)
    assert gpu_preflight.run_checks(torch.device("cpu"), log=lambda m: None)["train_mode"]["status"] == "ok"


def test_gpu_check_without_its_data_says_what_to_run(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "scripts"))
    import gpu_check
    monkeypatch.setattr(gpu_check, "CARRY", tmp_path / "nothing")
    assert gpu_check.run(tmp_path / "out", smoke=False, reference=None) == 2


def test_speed_vs_reference_names_a_wrong_reference_folder(tmp_path):
    done = run_script("scripts/speed_vs_reference.py", "--reference", str(tmp_path), "--sizes", "16/32@8")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "no modules/vae.py" in done.stderr and "jxhe/vae-lagging-encoder" in done.stderr
    bad = run_script("scripts/speed_vs_reference.py", "--reference", str(tmp_path), "--sizes", "16x32")
    assert "--sizes expects EMBED/HIDDEN@K" in bad.stderr and "Traceback" not in bad.stderr
