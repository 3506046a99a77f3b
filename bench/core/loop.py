"""The training loop: epochs, validation, the learning-rate schedule, model selection.

The schedule is the reference implementation's (He et al. 2019, ``text.py``): SGD with
learning rate 1.0, gradient norm clipped at 5, validation every epoch. The best checkpoint
is the one with the lowest validation loss. The learning-rate rule compares each epoch's
validation loss with the *previous epoch that was not worse* (reset at each decay): after
``decay_patience`` worse epochs in a row, from 0-based epoch ``decay_start_epoch`` on, the
learning rate is halved and the best checkpoint restored; training stops after
``max_decays`` decays or ``max_epochs``. The test evaluation uses the best checkpoint.
Methods change the objective and the update through :mod:`bench.core.method` hooks, which get a
:class:`~bench.core.step.StepContext`, never the loop itself.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import os
import random
import sys
import time
from typing import Any, Callable, Iterator

import torch

from bench.core.config import RunConfig
from bench.core.data import BatchedSplit, Corpus
from bench.core.errors import BenchError
from bench.core.method import Method, TrainingClock, defines
from bench.core.metric_specs import summary_line
from bench.core.metrics import evaluate, mean_mi_batch
from bench.core.model import ModelHooks, SequenceVAE
from bench.core.samples import SENTENCES as SAMPLE_SENTENCES, text_samples
from bench.core.step import StepContext, check_finite

FINITE_CHECK_EVERY = 50  # steps between checks of the running loss (each check waits for the device)
PROGRESS_EVERY_S = 30.0  # without a terminal, a progress line inside an epoch this often


def cpu_share(cpu_seconds: float, wall_seconds: float) -> float:
    """CPU time this process got per second of wall-clock per torch thread: about 1 when a
    CPU run had its cores to itself, lower when other work shared them (a timing condition:
    training times are compared only between runs that had their cores, bench.cli.compare)."""
    return cpu_seconds / max(wall_seconds * torch.get_num_threads(), 1e-9)


def load_per_core() -> float:
    """The machine's 1-minute load average per logical core (everything running, not only us)."""
    return os.getloadavg()[0] / (os.cpu_count() or 1)


def cpu_supports_bf16() -> bool:
    """Whether torch's oneDNN kernels have bfloat16 instructions on this CPU (AVX-512 BF16 or
    AMX): without them an LSTM under bfloat16 autocast fails to build its kernel."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without the query: assume not
        return False


def resolve_device(name: str | None, holds_gpu: bool = False) -> torch.device:
    """``cuda`` when asked for or available, else ``cpu``; asking for a missing GPU is an error,
    and so is ``auto`` in a process that was given a GPU (a Ray trial that reserved one) where
    torch sees none (e.g. a CPU build of torch on a GPU host): never a silent CPU run."""
    if name in (None, "auto"):
        if holds_gpu and not torch.cuda.is_available():
            raise BenchError("this trial reserved a GPU but torch sees none (a CPU build of torch, or "
                             "CUDA_VISIBLE_DEVICES empty?); install a CUDA build of torch or run with --device cpu")
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError("--device cuda was asked for but torch sees no GPU; use --device cpu")
    if name.split(":")[0] not in ("cpu", "cuda"):
        raise BenchError(f"--device {name}: unknown device; use auto, cpu or cuda (cuda:N for one GPU)")
    return torch.device(name)


def exact_float32() -> None:
    """float32 means float32 on a GPU too: cuDNN's LSTM and convolutions default to TF32 (10-bit
    mantissa) on Ampere and later GPUs, and so would matmuls under ``high`` precision; the
    records and the IW-error tables assume float32 (``train.bf16`` is the recorded way to trade
    precision for speed). Cheap and harmless on a CPU."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    deterministic_where_cheap()


def deterministic_where_cheap() -> None:
    """Determinism on a GPU where it costs little: cuDNN picks deterministic algorithms and does
    not benchmark (a choice that could differ between runs), and cuBLAS gets the fixed workspace
    its deterministic mode needs (read when cuBLAS starts, so set before the first matmul).
    Not set: ``torch.use_deterministic_algorithms``, because the embedding's backward on CUDA
    accumulates with atomics and its deterministic form is a sort-based kernel several times
    slower; two GPU runs of one seed may therefore differ in the last bits, which the GPU check's
    pre-flight measures (20 steps twice). The records say so (``hardware.determinism``). A CPU
    run is deterministic as it is."""
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


EVALUATION_STREAM = 0x5EED_E7A1  # mixed into the seed: evaluation draws are not training's


@contextlib.contextmanager
def evaluation_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Every evaluation draws its random numbers (z samples, MI and IW draws) from a stream seeded
    by the run's seed alone, whatever the method and however long it trained, and leaves the
    training stream as it found it. Runs at one seed then share their evaluation noise (the
    paired comparisons of bench.core.stats rely on it), and an evaluation never changes what
    training draws next (so a resumed run equals an uninterrupted one)."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed ^ EVALUATION_STREAM)
        yield


def build_model(method: Method, vocab_size: int, config: RunConfig) -> SequenceVAE:
    latent_dim = config.model.latent_dim if method.uses_latent else 0
    hooks = ModelHooks(summary=method.encoder_summary(), mean_layer=method.posterior_mean_layer(latent_dim),
                       decoder_input=method.decoder_input(), latent_to_output=method.latent_to_output(),
                       differentiates_twice=method.differentiates_twice)
    model = SequenceVAE(vocab_size, config.model, latent_dim=latent_dim, hooks=hooks)
    method.initialise(model)
    return model


class RefinedPosterior(torch.nn.Module):
    """A model whose q(z|x) is the method's test-time refinement of the encoder's (SA-VAE)."""

    def __init__(self, model: SequenceVAE, method: Method):
        super().__init__()
        self.model, self.method = model, method
        self.vocab_size = model.vocab_size

    def encode(self, x):
        return self.method.refine_posterior(self.model, x, *self.model.encode(x))

    def encoder_features(self, x):
        return self.model.encoder_features(x)

    def log_px_given_z(self, x, z, bf16=False):
        return self.model.log_px_given_z(x, z, bf16=bf16)

    def forward(self, x):
        return self.model.elbo_terms(x, *self.encode(x))


def require_bf16_support(config: RunConfig, device: torch.device) -> None:
    """``train.bf16`` on a CPU without bfloat16 instructions is refused in one line (before a sweep starts Ray, too)."""
    if config.train.bf16 and device.type == "cpu" and not cpu_supports_bf16():
        raise BenchError("train.bf16 is set, but this CPU has no bfloat16 instructions (AVX-512 BF16 or AMX) "
                         "that torch's LSTM can use; unset train.bf16 or train on a GPU")


class Trainer:
    """Owns the model, the data and the schedule; a method's hooks see only ``self.context``."""

    def __init__(self, config: RunConfig, method: Method, corpus: Corpus, device: torch.device,
                 log: Callable[[str], None] = print):
        self.config, self.method, self.corpus, self.device, self.log = config, method, corpus, device, log
        require_bf16_support(config, device)
        seed_everything(config.seed)
        exact_float32()
        self.model = build_model(method, len(corpus.vocab), config).to(device)
        batch_size, eval_batch_size = config.data.batch_size, config.data.eval_batch_size
        self.train_data = BatchedSplit(corpus.splits["train"], batch_size).to(device)
        self.valid_data = BatchedSplit(corpus.splits["valid"], eval_batch_size).to(device)
        self.test_data = BatchedSplit(corpus.splits["test"], eval_batch_size).to(device)
        # KL, MI and AU need encoder passes only: the whole test split, even where a reduced
        # profile scores the decoder on its first N sentences
        self.encoder_test_data = BatchedSplit(corpus.full_test, eval_batch_size).to(device)
        # The IW bound is costly: a reduced profile scores the first N test sentences in file
        # order (a representative sample; the batches themselves are sorted by length).
        self.iw_test_data = BatchedSplit(corpus.splits["test"][: config.eval.iw_max_sentences],
                                         eval_batch_size).to(device)
        self.generator = torch.Generator().manual_seed(config.seed)  # batch order and random batches
        self.step = 0  # training batches seen (the schedules' clock)
        self.epoch = 0
        self.curves: list[dict[str, Any]] = []
        self.best_loss = math.inf  # lowest validation loss (the checkpoint kept)
        self.best_state = copy.deepcopy(self.model.state_dict())
        self.schedule_loss = math.inf  # what the learning-rate rule compares with (reference opt_dict)
        self.not_improved = 0
        self.decays = 0
        self.train_seconds = 0.0
        self.train_cpu_seconds = 0.0  # this process's CPU time while training (the run's load condition)
        self.eval_seconds = 0.0
        self.context = StepContext(
            self.model, method, config.train.lr, config.train.clip_grad_norm, clock=lambda: self.clock,
            random_batch=lambda: self.train_data.random_batch(self.generator),
            validation_mi=self.validation_mi_at_training_batch_size,
            restart_model_selection=self.restart_model_selection, log=log, bf16=config.train.bf16)

    @property
    def lr(self) -> float:
        return self.context.lr

    @property
    def clock(self) -> TrainingClock:
        per_epoch = len(self.train_data)
        return TrainingClock(self.step, per_epoch, self.config.train.max_epochs * per_epoch)

    # -- evaluation -----------------------------------------------------------------------
    def validate(self) -> dict[str, float]:
        """Validation metrics (no IW bound), timed as evaluation."""
        return self._evaluate(self.valid_data)

    def test(self) -> dict[str, float]:
        """Test metrics with the importance-weighted NLL, timed as evaluation; the encoder's
        statistics (KL, MI, AU, dispersion) over the whole test split."""
        return self._evaluate(self.test_data, self.iw_test_data, encoder_data=self.encoder_test_data)

    def test_refined(self) -> dict[str, float] | None:
        """Test metrics with the method's refined posterior (SA-VAE's SVI: a costly encoder,
        so on the scored sentences only), or None."""
        if not defines(self.method, "refine_posterior"):
            return None
        return self._evaluate(self.test_data, self.iw_test_data, RefinedPosterior(self.model, self.method))

    def text_samples(self) -> dict[str, Any]:
        """Reconstructions, prior samples and an interpolation as text (bench.core.samples), drawn
        from the evaluation stream and timed as evaluation."""
        started = time.perf_counter()
        with evaluation_rng(self.config.seed, self.device):
            result = text_samples(self.model, self.corpus.vocab, self.corpus.full_test[:SAMPLE_SENTENCES], self.device)
        self.eval_seconds += time.perf_counter() - started
        return result

    def validation_mi_at_training_batch_size(self) -> float:
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            mi = mean_mi_batch(self.model.encode(x) for x in self.valid_at_training_batch_size)
        self.model.train(was_training)
        return mi

    @functools.cached_property
    def valid_at_training_batch_size(self) -> BatchedSplit:
        return BatchedSplit(self.corpus.splits["valid"], self.config.data.batch_size).to(self.device)

    def _evaluate(self, data: BatchedSplit, iw_data: BatchedSplit | None = None, model=None,
                  encoder_data: BatchedSplit | None = None) -> dict[str, float]:
        started = time.perf_counter()
        with evaluation_rng(self.config.seed, self.device):
            result = evaluate(model or self.model, data, self.config.eval, iw_data, self.device, encoder_data)
        self.eval_seconds += time.perf_counter() - started
        return result

    # -- epochs and schedule --------------------------------------------------------------
    def step_once(self, batch: torch.Tensor) -> dict[str, Any]:
        """One training update of the method on ``batch``, and the schedules' clock moved on:
        what an epoch does per batch (perf and the tests take steps the same way). Always in train
        mode: dropout on, and on a GPU cuDNN's LSTM has no backward in eval mode."""
        if not self.model.training:
            self.model.train()
        stats = self.method.train_step(self.context, batch)
        self.step += 1
        return stats

    def train_epoch(self, progress: bool, on_step: Callable[["Trainer"], None] | None = None) -> dict[str, float]:
        """One pass over the shuffled training batches; averages per sentence and tokens/s.

        Statistics are summed on the device and read at the end (and every
        FINITE_CHECK_EVERY steps, to stop a diverged run early), not after every step.
        """
        self.model.train()
        totals: dict[str, Any] = {"loss": 0.0, "rec": 0.0, "kl": 0.0, "sentences": 0, "words": 0}
        started, cpu_started = time.perf_counter(), time.process_time()
        batches = self.train_data.shuffled(self.generator)
        bar = None
        if progress:
            from tqdm import tqdm
            batches = bar = tqdm(batches, total=len(self.train_data), desc=f"epoch {self.epoch + 1}",
                                 leave=False, unit="batch", file=sys.stderr)
        last_line = started
        for index, batch in enumerate(batches, 1):
            stats = self.step_once(batch)  # batches live on the device
            if on_step is not None:
                on_step(self)
            for key in totals:
                totals[key] = totals[key] + stats[key]
            if index % FINITE_CHECK_EVERY == 0 or bar is not None:
                check_finite(totals["loss"], f"at epoch {self.epoch + 1}, by step {self.step}")
            if bar is not None:
                bar.set_postfix(loss=f"{float(totals['loss']) / totals['sentences']:.2f}",
                                kl=f"{float(totals['kl']) / totals['sentences']:.2f}")
            elif time.perf_counter() - last_line > PROGRESS_EVERY_S:  # a log file: a line now and then
                last_line = time.perf_counter()
                elapsed, total = last_line - started, len(self.train_data)
                self.log(f"  epoch {self.epoch + 1}: {index}/{total} batches, train loss "
                         f"{float(totals['loss']) / totals['sentences']:.2f} (KL {float(totals['kl']) / totals['sentences']:.2f}), "
                         f"{float(totals['words']) / elapsed:.0f} tok/s, about {elapsed * (total - index) / index / 60:.1f} min left")
        check_finite(totals["loss"], f"at epoch {self.epoch + 1}, by step {self.step}")
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        self.train_seconds += seconds
        self.train_cpu_seconds += cpu_seconds
        n = max(1, totals["sentences"])
        return {"train_loss": float(totals["loss"]) / n, "train_rec": float(totals["rec"]) / n,
                "train_kl": float(totals["kl"]) / n, "train_tokens_per_s": float(totals["words"]) / max(seconds, 1e-9),
                "train_cpu_share": cpu_share(cpu_seconds, seconds), "load_per_core": load_per_core()}

    def end_of_epoch(self, valid: dict[str, float]) -> bool:
        """Reference learning-rate schedule (``text.py``); returns True when training should stop."""
        train = self.config.train
        loss = valid["elbo_nll"]
        if loss < self.best_loss:
            self.best_loss = loss
            self.best_state = copy.deepcopy(self.model.state_dict())
        if loss <= self.schedule_loss:
            self.schedule_loss, self.not_improved = loss, 0
            return self.decays >= train.max_decays
        self.not_improved += 1
        if self.not_improved >= train.decay_patience and self.epoch - 1 >= train.decay_start_epoch:
            self.schedule_loss, self.not_improved = loss, 0
            self.decays += 1
            self.model.load_state_dict(self.best_state)
            self.context.set_learning_rate(self.lr * train.lr_decay)
            self.log(f"  learning rate decayed to {self.lr:g} (decay {self.decays}/{train.max_decays}); "
                     "best checkpoint restored")
        return self.decays >= train.max_decays

    def fit(self, progress: bool = False, on_epoch: Callable[["Trainer"], None] | None = None,
            on_step: Callable[["Trainer"], None] | None = None) -> str:
        """Train until a stopping rule fires; returns why it stopped.

        ``on_epoch`` runs after each epoch's validation, ``on_step`` after each update.
        """
        train = self.config.train
        while self.epoch < train.max_epochs and self.decays < train.max_decays:  # (resumed runs may be done)
            row = self.train_epoch(progress, on_step)
            self.epoch += 1
            valid = self.validate()
            row.update({"epoch": self.epoch, "lr": self.lr, "kl_weight": self.context.kl_weight,
                        **{f"valid_{k}": v for k, v in valid.items() if k not in ("sentences", "words")}})
            stop = self.end_of_epoch(valid)
            row.update(self.method.on_epoch_end(self.context, self.epoch, valid))  # may restart selection
            row.update(train_seconds=self.train_seconds, elapsed_seconds=self.train_seconds + self.eval_seconds)
            self.curves.append(row)
            if on_epoch is not None:  # checkpoint first, so an interruption after it loses nothing
                on_epoch(self)
            self.log(f"epoch {self.epoch:3d}  train loss {row['train_loss']:.2f} (KL {row['train_kl']:.2f})  "
                     f"valid ELBO {valid['elbo_nll']:.2f}  {summary_line(valid)}  h(x) cos-dist {valid.get('feature_cosine_distance', 0):.3f}  "
                     f"lr {self.lr:g}  {row['train_tokens_per_s']:.0f} tok/s")
            if stop:
                return f"{train.max_decays} learning-rate decays"
            if train.max_train_minutes is not None and self.train_seconds > 60 * train.max_train_minutes:
                return f"time budget of {train.max_train_minutes:g} training minutes"
        return f"max_epochs={train.max_epochs}"

    def restart_model_selection(self) -> None:
        """Forget the best checkpoint and the learning-rate rule's history (a method starts a new phase)."""
        self.best_loss = self.schedule_loss = math.inf
        self.not_improved = 0
        self.best_state = copy.deepcopy(self.model.state_dict())

    # -- checkpoints ----------------------------------------------------------------------
    STATE_FIELDS = ("step", "epoch", "curves", "best_loss", "schedule_loss", "not_improved", "decays",
                    "train_seconds", "train_cpu_seconds", "eval_seconds")

    def state_dict(self) -> dict[str, Any]:
        cuda_rng = {"cuda_rng": torch.cuda.get_rng_state(self.device)} if self.device.type == "cuda" else {}
        return {"model": self.model.state_dict(), "best_state": self.best_state, "lr": self.lr,
                "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(), **cuda_rng,
                "method": self.method.state_dict(), **{k: getattr(self, k) for k in self.STATE_FIELDS}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """From :meth:`state_dict`, loaded on the CPU (records.load_checkpoint): the weights go to
        the model's device; the RNG states stay CPU tensors, as ``set_rng_state`` requires. A
        CUDA run restores its CUDA stream too (dropout and z noise there), so that a resumed GPU
        run continues the uninterrupted one; a checkpoint from another device type starts the
        new device's stream from the run's seed."""
        self.model.load_state_dict(state["model"])
        self.best_state = {k: v.to(self.device) for k, v in state["best_state"].items()}
        self.generator.set_state(state["generator"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        if self.device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.device)
        self.method.load_state_dict(state["method"])
        for key in self.STATE_FIELDS:
            # a checkpoint from before CPU time was measured: the run's CPU share stays unknown
            setattr(self, key, state[key] if key != "train_cpu_seconds" else state.get(key, math.nan))
        self.context.set_learning_rate(state["lr"])
