"""End-to-end runs on the smoke profile: records, resume, failures, CLI."""

import json
import os
import math
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from bench.core import records
from bench.core.config import TrainConfig
from bench.core.lifecycle import run
from bench.core.errors import BenchError
from bench.core.loop import Trainer, cpu_supports_bf16
from bench.core.step import TrainingDiverged

REQUIRED_TEST_METRICS = ("nll", "kl", "mi", "au", "ppl", "elbo_nll", "iw_samples")


def quiet(message):
    pass


def interrupt_after_first_epoch(config, results):
    """Run until the first epoch's log line, then stop as a Ctrl-C would (a checkpoint, no record)."""
    def log(message):
        if message.startswith("epoch   1"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(config, results, log=log)


def test_run_writes_a_self_describing_record(tmp_path, smoke_config):
    record = run(smoke_config("vae"), tmp_path, log=quiet)
    path = next(tmp_path.rglob(records.RECORD_NAME))
    assert json.loads(path.read_text()) == json.loads(json.dumps(record, default=str))
    assert record["status"] == "finished"
    for key in REQUIRED_TEST_METRICS:
        assert key in record["metrics"]["test"]
    assert record["metrics"]["test"]["iw_samples"] == 8
    assert record["timing"]["train_seconds"] > 0 and record["timing"]["test_eval_seconds"] > 0
    assert math.isfinite(record["timing"]["host_speed"]) and record["timing"]["host_speed"] > 0
    assert len(record["curves"]) == record["epochs"] == 2
    assert {"train_loss", "valid_kl", "valid_mi", "valid_au", "lr", "elapsed_seconds"} <= set(record["curves"][0])
    assert record["config"]["model"]["latent_dim"] == 4
    assert record["environment"]["packages"]["torch"]
    assert record["environment"]["hardware"]["cpu_count_logical"] >= 1
    assert not list(tmp_path.rglob(records.CHECKPOINT_NAME))  # removed once the record exists


def test_same_seed_same_numbers_and_finished_runs_are_not_redone(tmp_path, smoke_config):
    first = run(smoke_config("vae"), tmp_path / "a", log=quiet)
    again = run(smoke_config("vae"), tmp_path / "b", log=quiet)
    assert first["curves"][-1]["train_loss"] == again["curves"][-1]["train_loss"]
    for metric in ("nll", "kl", "mi", "mi_se", "mi_batch", "au", "elbo_nll", "nll_per_sentence"):  # to the last digit
        assert first["metrics"]["test"][metric] == again["metrics"]["test"][metric], metric
    messages = []
    reused = run(smoke_config("vae"), tmp_path / "a", log=messages.append)
    assert reused["finished_at"] == first["finished_at"] and "already finished" in messages[0]


def test_bfloat16_options_train_and_evaluate_close_to_float32(tmp_path, smoke_config):
    full = run(smoke_config("vae"), tmp_path, log=quiet)["metrics"]["test"]
    # same training and samples, evaluation with the bfloat16 output layer: only precision differs
    iw_bf16 = run(smoke_config("vae", eval={"iw_bf16": True}), tmp_path, log=quiet)
    assert iw_bf16["config"]["eval"]["iw_bf16"] is True
    assert iw_bf16["metrics"]["test"]["elbo_nll"] == full["elbo_nll"]
    assert 0 < abs(iw_bf16["metrics"]["test"]["nll"] - full["nll"]) < 0.05
    if not cpu_supports_bf16():  # training in bfloat16 needs the CPU's bfloat16 instructions
        with pytest.raises(BenchError, match="no bfloat16 instructions"):
            run(smoke_config("vae", train={"bf16": True}), tmp_path, log=quiet)
        return
    half = run(smoke_config("vae", train={"bf16": True}), tmp_path, log=quiet)
    assert half["status"] == "finished" and abs(half["metrics"]["test"]["nll"] - full["nll"]) < 1.0


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path, smoke_config):
    config = smoke_config("vae", train={"max_epochs": 3})
    interrupt_after_first_epoch(config, tmp_path)
    assert next(tmp_path.rglob(records.CHECKPOINT_NAME))
    assert not list(tmp_path.rglob(records.RECORD_NAME))
    messages = []
    resumed = run(config, tmp_path, log=messages.append)
    assert any("resuming from epoch 1" in m for m in messages)
    assert [row["epoch"] for row in resumed["curves"]] == [1, 2, 3]
    uninterrupted = run(config, tmp_path / "fresh", log=quiet)
    assert resumed["curves"][-1]["train_loss"] == pytest.approx(uninterrupted["curves"][-1]["train_loss"])


def test_nan_loss_fails_with_a_record_and_one_line(tmp_path, smoke_config):
    config = smoke_config("vae", train={"lr": 1e30})
    with pytest.raises(TrainingDiverged, match="lower train.lr"):
        run(config, tmp_path, log=quiet)
    record = json.loads(next(tmp_path.rglob(records.RECORD_NAME)).read_text())
    assert record["status"] == "failed" and "loss is" in record["error"]


def test_lm_and_vae_records_share_the_schema(tmp_path, smoke_config):
    lm = run(smoke_config("lm"), tmp_path, log=quiet)["metrics"]["test"]
    vae = run(smoke_config("vae"), tmp_path, log=quiet)["metrics"]["test"]
    # one schema: the VAE adds only the encoder's dispersion statistics and where its states peak
    # (the LM has no encoder)
    assert set(lm) <= set(vae)
    assert set(vae) - set(lm) == {f"{v}_{s}" for v in ("feature", "mu") for s in ("variance", "cosine_distance")} | {
        "max_at_start", "max_at_end", "max_inside"}
    assert vae["kl"] > 0 and vae["nll"] < vae["elbo_nll"] + 1.0  # a VAE has a KL; IW no looser than the ELBO
    assert lm["kl"] == 0 and lm["au"] == 0
    assert lm["nll"] == pytest.approx(lm["elbo_nll"], rel=1e-4)  # exact for a language model
    assert math.isfinite(lm["ppl"])


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "bench.cli.train", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_cli_errors_are_one_line(tmp_path):
    result = cli("--method", "vea", "--profile", "smoke", "--out", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: unknown method 'vea' (did you mean 'vae'?); available: aggressive, "
                                     "beta_vae, bn_vae, cyclical, free_bits, kl_anneal, lm, pooling, pretrain_fb, sa_vae, skip_vae, vae, "
                                     "word_dropout "
                                     "(combine with '+', e.g. pooling+kl_anneal)")
    result = cli("--method", "vae", "--dataset", "nope", "--data-dir", str(tmp_path), "--profile", "smoke")
    assert result.returncode == 2 and "dataset folder" in result.stderr and len(result.stderr.splitlines()) == 1


def test_out_pointing_at_a_file_is_a_one_line_error(tmp_path):
    existing = tmp_path / "results.txt"
    existing.write_text("keep me")
    result = cli("--method", "vae", "--profile", "smoke", "--out", str(existing), "--quiet")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "is a file, not a folder" in result.stderr and existing.read_text() == "keep me"


def test_cli_trains_and_prints_the_result(tmp_path):
    result = cli("--method", "pooling", "--profile", "smoke", "--out", str(tmp_path), "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("pooling synthetic seed 0: NLL ")


def test_iw_subset_is_the_first_test_sentences_in_file_order(smoke_config):
    import torch
    from bench.core.data import PAD_ID, load_corpus
    from bench.core.method import build_method
    config = smoke_config("vae", eval={"iw_max_sentences": 5})
    corpus = load_corpus(config.dataset, config.data)
    trainer = Trainer(config, build_method("vae"), corpus, torch.device("cpu"), log=quiet)
    scored = sorted(tuple(t for t in row.tolist() if t != PAD_ID)[1:-1] for b in trainer.iw_test_data for row in b)
    assert scored == sorted(tuple(s) for s in corpus.splits["test"][:5])
    assert trainer.test()["iw_sentences"] == 5


class ScriptedTrainer(Trainer):
    """The learning-rate rule alone, fed a given sequence of validation losses."""

    def __init__(self, train_config):
        self.config = types.SimpleNamespace(train=train_config)
        self.epoch, self.decays, self.not_improved = 0, 0, 0
        self.best_loss = self.schedule_loss = math.inf
        self.model = torch.nn.Linear(1, 1)
        self.log = lambda message: None
        self.context = types.SimpleNamespace(lr=1.0)
        self.context.set_learning_rate = lambda lr: setattr(self.context, "lr", lr)


def test_learning_rate_rule_follows_the_reference_bookkeeping():
    """text.py: patience counts epochs worse than the last not-worse epoch (reset at each decay),
    decay allowed from 0-based epoch 15; the best checkpoint is the global minimum."""
    trainer = ScriptedTrainer(TrainConfig(decay_start_epoch=2, decay_patience=2, max_decays=5))
    lrs = []
    for loss in [10, 9, 9.5, 9.4, 9.3, 9.35]:
        trainer.epoch += 1
        trainer.end_of_epoch({"elbo_nll": loss})
        lrs.append(trainer.lr)
    # 9.5, 9.4 are worse than 9 -> decay at the 4th epoch, and 9.4 becomes the reference point;
    # 9.3 is not worse than it (though worse than the best, 9): the counter resets, so 9.35
    # counts once and there is no second decay (a rule against the global best would decay).
    assert lrs == [1, 1, 1, 0.5, 0.5, 0.5]
    assert trainer.best_loss == 9


def test_decay_waits_for_the_start_epoch():
    trainer = ScriptedTrainer(TrainConfig(decay_start_epoch=15, decay_patience=2))
    for epoch in range(1, 17):  # every epoch worse: first decay at 0-based epoch 15, i.e. the 16th
        trainer.epoch = epoch
        trainer.end_of_epoch({"elbo_nll": float(epoch)})
        if epoch == 15:
            assert trainer.decays == 0
    assert trainer.decays == 1


def test_model_has_no_bias_where_the_reference_has_none():
    from bench.core.config import ModelConfig
    from bench.core.model import SequenceVAE
    model = SequenceVAE(30, ModelConfig(embed_dim=8, encoder_hidden=8, decoder_hidden=8, latent_dim=2))
    assert model.to_posterior.bias is None and model.latent_to_cell.bias is None and model.output.bias is None


def test_encoder_init_pytorch_changes_the_encoder_only(smoke_config):
    from bench.core.config import ModelConfig
    from bench.core.model import SequenceVAE
    sizes = dict(embed_dim=8, encoder_hidden=64, decoder_hidden=64, latent_dim=2)
    reference = SequenceVAE(30, ModelConfig(**sizes))
    torch.manual_seed(0)
    pytorch = SequenceVAE(30, ModelConfig(**sizes, encoder_init="pytorch"))
    bound = 1 / 64 ** 0.5  # nn.LSTM's default: U(-1/sqrt(H), 1/sqrt(H))
    assert 0.9 * bound < float(pytorch.encoder_lstm.weight_hh_l0.detach().abs().max()) <= bound
    assert float(reference.encoder_lstm.weight_hh_l0.detach().abs().max()) <= 0.01
    assert float(pytorch.encoder_embedding.weight.detach().std()) > 0.5  # nn.Embedding's N(0, 1)
    for module in ("decoder_lstm", "latent_to_cell", "output"):  # the decoder keeps the reference's
        assert all(float(p.detach().abs().max()) <= 0.01 for p in getattr(pytorch, module).parameters())
    assert smoke_config("vae").identity() == smoke_config("vae", model={"encoder_init": "reference"}).identity()
    assert smoke_config("vae").identity() != smoke_config("vae", model={"encoder_init": "pytorch"}).identity()


def test_corrupt_checkpoint_and_record_are_one_line_errors(tmp_path, smoke_config):
    from bench.core.errors import BenchError
    config = smoke_config("vae", train={"max_epochs": 2})
    interrupt_after_first_epoch(config, tmp_path)
    checkpoint = next(tmp_path.rglob(records.CHECKPOINT_NAME))
    assert records.load_checkpoint(checkpoint, "cpu")["epoch"] == 1  # loads with weights_only=True
    checkpoint.write_bytes(b"not a checkpoint")
    with pytest.raises(BenchError, match="is not a readable checkpoint.*--restart"):
        run(config, tmp_path, log=quiet)
    record = run(config, tmp_path, log=quiet, resume=False)
    path = next(tmp_path.rglob(records.RECORD_NAME))
    path.write_text("{ half a record")
    with pytest.raises(BenchError, match="is not valid JSON.*--restart"):
        run(config, tmp_path, log=quiet)
    assert record["status"] == "finished"


def test_run_id_depends_on_the_runs_own_method_settings_only(smoke_config):
    from bench.core.method import build_method, method_settings

    def identifier(config):
        return records.run_id(config, method_settings(build_method(config.method, config.methods)))

    base = identifier(smoke_config("vae"))
    assert identifier(smoke_config("vae", sa_vae={"svi_steps": 3})) == base  # another method's setting
    pooled = smoke_config("pooling+kl_anneal")
    assert identifier(smoke_config("pooling+kl_anneal", sa_vae={"svi_steps": 3})) == identifier(pooled)
    assert identifier(smoke_config("pooling+kl_anneal", kl_anneal={"warm_up": 3})) != identifier(pooled)
    assert identifier(smoke_config("vae", train={"lr": 0.5})) != base
    # settings added after records existed enter the id only when set (committed ids stay valid)
    assert smoke_config("vae", train={"bf16": False}).identity() == smoke_config("vae").identity()
    assert "iw_bf16" not in smoke_config("vae").identity()["eval"]
    assert identifier(smoke_config("vae", train={"bf16": True})) != base
    assert identifier(smoke_config("vae", eval={"iw_bf16": True})) != base


def test_a_gpu_run_has_its_own_id_and_folder_and_a_cpu_run_keeps_its_own(tmp_path, smoke_config):
    """A record or checkpoint made on one device type is never reused or resumed on another."""
    from bench.core.lifecycle import plan_run
    config = smoke_config("vae")
    cpu, cuda = plan_run(config, tmp_path), plan_run(config, tmp_path, device_type="cuda")
    assert cpu.identifier != cuda.identifier and cpu.folder != cuda.folder
    assert plan_run(config, tmp_path, device_type="cpu").identifier == cpu.identifier  # the default is the CPU


def test_committed_records_keep_their_run_ids():
    # a record is reused by a sweep only if the config it stores still hashes to its run id
    from bench.core.config import SECTIONS, RunConfig, from_dict
    paths = sorted(Path(records.__file__).parents[2].glob("results/**/record.json"))
    assert paths
    for path in paths:
        record = json.loads(path.read_text())
        raw = record["config"]
        config = RunConfig(**{k: from_dict(SECTIONS[k], v, str(path)) if k in SECTIONS else v for k, v in raw.items()})
        assert records.run_id(config, record["method_settings"]) == record["run_id"], path


def test_long_epochs_print_progress_lines_without_a_terminal(tmp_path, smoke_config, monkeypatch):
    from bench.core import loop
    monkeypatch.setattr(loop, "PROGRESS_EVERY_S", 0.0)  # as if every step took more than the interval
    messages = []
    run(smoke_config("vae", train={"max_epochs": 1}), tmp_path, log=messages.append, progress=False)
    lines = [m for m in messages if m.startswith("  epoch 1: ")]
    assert lines and lines[0].startswith("  epoch 1: 1/8 batches, train loss ") and "min left" in lines[0]


def test_evaluation_noise_depends_on_the_run_seed_alone(smoke_config, monkeypatch):
    """Runs at one seed share their evaluation draws whatever the method and however long they
    trained (the paired verdicts rely on it), another seed draws others, and an evaluation leaves
    the training stream where it was."""
    from bench.core import loop
    from bench.core.data import load_corpus
    from bench.core.method import build_method
    monkeypatch.setattr(loop, "evaluate", lambda *args, **kwargs: {"draw": torch.randn(6)})

    def trainer(method, seed=0):
        from bench.core.config import build_run_config
        config = build_run_config(method, "synthetic", "smoke", seed, {})
        return Trainer(config, build_method(method, config.methods), load_corpus(config.dataset, config.data),
                       torch.device("cpu"), log=quiet)

    vae, pooling = trainer("vae"), trainer("pooling")
    vae.step_once(next(iter(vae.train_data)))  # a different length of training
    torch.manual_seed(99)
    before = torch.get_rng_state()
    first = vae.validate()["draw"]
    assert torch.equal(torch.get_rng_state(), before)  # training's stream untouched
    assert torch.equal(first, pooling.validate()["draw"]) and torch.equal(first, vae.test()["draw"])
    assert not torch.equal(first, trainer("vae", seed=1).validate()["draw"])


def test_encoder_statistics_cover_the_whole_test_split(smoke_config):
    """A reduced profile scores the decoder on its first N test sentences; KL, MI and AU are taken
    over every test sentence."""
    from bench.core.data import load_corpus
    from bench.core.method import build_method
    config = smoke_config("vae", data={"max_eval_sentences": 20})
    corpus = load_corpus(config.dataset, config.data)
    assert len(corpus.splits["test"]) == 20 and len(corpus.full_test) == config.data.synthetic_test
    result = Trainer(config, build_method("vae"), corpus, torch.device("cpu"), log=quiet).test()
    assert result["sentences"] == 20 and result["encoder_sentences"] == config.data.synthetic_test
    assert {"mi", "mi_se", "mi_batch", "mi_batch_noise", "mi_above_kl"} <= set(result)


def test_training_is_stepped_in_train_mode_and_timing_iw_leaves_it_there(smoke_config):
    """On a GPU, cuDNN's LSTM has no backward in eval mode: a step after an evaluation must train."""
    from bench.cli.perf import time_iw
    from bench.core.data import load_corpus
    from bench.core.method import build_method
    config = smoke_config("vae")
    trainer = Trainer(config, build_method("vae"), load_corpus(config.dataset, config.data), torch.device("cpu"),
                      log=quiet)
    modes = []
    trainer.method.train_step = lambda context, batch: modes.append(context.model.training) or {"words": 0}
    time_iw(trainer, 2, 2)
    assert trainer.model.training  # restored after timing the IW bound
    trainer.model.eval()  # as any evaluation leaves it
    trainer.step_once(next(iter(trainer.train_data)))
    assert modes == [True]


def test_an_evaluation_failure_leaves_a_failed_record(tmp_path, smoke_config, monkeypatch):
    def broken(self):
        raise RuntimeError("cudnn RNN backward can only be called in training mode")
    monkeypatch.setattr(Trainer, "test", broken)
    with pytest.raises(RuntimeError):
        run(smoke_config("vae"), tmp_path, log=quiet)
    record = json.loads(next(tmp_path.rglob(records.RECORD_NAME)).read_text())
    assert record["status"] == "failed" and "training mode" in record["error"] and "metrics" not in record


def test_a_checkpoint_loads_on_the_cpu_whatever_the_device(tmp_path, smoke_config):
    """Checkpoints are read to the CPU (RNG states must stay CPU byte tensors): a GPU-written
    checkpoint resumes on a CPU and the other way round; 'meta' stands in for another device."""
    from bench.core import files
    from bench.core.data import load_corpus
    from bench.core.method import build_method
    config = smoke_config("vae")
    trainer = Trainer(config, build_method("vae"), load_corpus(config.dataset, config.data), torch.device("cpu"),
                      log=quiet)
    path = tmp_path / records.CHECKPOINT_NAME
    files.save_checkpoint_atomic(path, {**trainer.state_dict(), **records.checkpoint_identity("abc")})
    state = records.load_checkpoint(path, torch.device("meta"), "abc")
    assert state["torch_rng"].device.type == "cpu" and state["model"]["output.weight"].device.type == "cpu"
    trainer.load_state_dict(state)  # set_rng_state accepts it


def test_sa_vae_differentiates_through_lstms_with_cudnn_off(smoke_config):
    """cuDNN's RNN backward has no second derivative and no eval-mode backward: SA-VAE's steps and
    its test-time refinement run with cuDNN off (a spy reads the flag inside the objective)."""
    from bench.core.data import load_corpus
    from bench.core.method import build_method
    from methods import sa_vae
    config = smoke_config("sa_vae", sa_vae={"svi_steps": 1})
    method = build_method("sa_vae", config.methods)
    trainer = Trainer(config, method, load_corpus(config.dataset, config.data), torch.device("cpu"), log=quiet)
    seen = []
    original = sa_vae.refine

    def spy(*args, **kwargs):
        seen.append(torch.backends.cudnn.enabled)
        return original(*args, **kwargs)

    sa_vae.refine, enabled = spy, torch.backends.cudnn.enabled
    try:
        trainer.step_once(next(iter(trainer.train_data)))
        trainer.model.eval()
        method.refine_posterior(trainer.model, next(iter(trainer.test_data)), *trainer.model.encode(next(iter(trainer.test_data))))
    finally:
        sa_vae.refine = original
    assert seen == [False, False] and torch.backends.cudnn.enabled == enabled


def test_float32_is_not_tf32_and_auto_is_strict_in_a_trial_holding_a_gpu(smoke_config, monkeypatch):
    from bench.core.data import load_corpus
    from bench.core.loop import resolve_device
    from bench.core.method import build_method
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = True, False
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    config = smoke_config("vae")
    Trainer(config, build_method("vae"), load_corpus(config.dataset, config.data), torch.device("cpu"), log=quiet)
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark  # cheap determinism, set
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(BenchError, match="reserved a GPU but torch sees none"):
        resolve_device("auto", holds_gpu=True)


def test_tensorboard_receives_every_epoch_from_train_and_from_a_sweep(tmp_path):
    """Optional (tensorboardX): skipped where it is not installed, as in CI."""
    pytest.importorskip("tensorboardX")
    import subprocess
    import sys
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-m", "bench", "train", "--method", "vae", "--profile", "smoke", "--out",
                           str(tmp_path / "results"), "--tensorboard", str(tmp_path / "tb"), "--quiet"],
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    events = list((tmp_path / "tb" / "smoke" / "synthetic" / "vae" / "seed0").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    assert b"valid_kl" in events[0].read_bytes() and b"valid_mi" in events[0].read_bytes()
    experiment = tmp_path / "exp.yaml"
    experiment.write_text("profile: smoke\ndatasets: [synthetic]\nseeds: [0]\nresources: {cpu: 1, gpu: 0}\nruns: [vae]\n")
    done = subprocess.run([sys.executable, "-m", "bench", "sweep", str(experiment), "--results", str(tmp_path / "sw"),
                           "--tensorboard"], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    events = list((tmp_path / "sw" / ".tune").rglob("events.out.tfevents.*"))
    assert events and any(b"valid_kl" in e.read_bytes() for e in events)
