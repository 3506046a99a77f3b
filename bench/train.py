"""Train and evaluate one run: ``python -m bench.train --method vae --dataset yahoo``.

The schedule is the reference implementation's (He et al. 2019, ``text.py``): SGD with
learning rate 1.0, gradient norm clipped at 5, validation every epoch. The best checkpoint
is the one with the lowest validation loss. The learning-rate rule compares each epoch's
validation loss with the *previous epoch that was not worse* (reset at each decay): after
``decay_patience`` worse epochs in a row, from 0-based epoch ``decay_start_epoch`` on, the
learning rate is halved and the best checkpoint restored; training stops after
``max_decays`` decays or ``max_epochs``. The test evaluation uses the best checkpoint.
Methods change the objective and the update through :mod:`bench.method` hooks only.
"""

from __future__ import annotations

import argparse
import copy
import functools
import math
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch

from bench import records
from bench.config import RunConfig, available_profiles, build_run_config, parse_overrides
from bench.data import SYNTHETIC, BatchedSplit, Corpus, load_corpus
from bench.errors import BenchError, run_cli
from bench.method import Method, TrainingClock, available_methods, build_method, defines, method_settings
from bench.metrics import evaluate, mean_mutual_information
from bench.model import SequenceVAE


class TrainingDiverged(BenchError):
    """The loss became NaN or infinite."""


def resolve_device(name: str | None) -> torch.device:
    """``cuda`` when asked for or available, else ``cpu``; asking for a missing GPU is an error."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError("--device cuda was asked for but torch sees no GPU; use --device cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def build_model(method: Method, vocab_size: int, config: RunConfig) -> SequenceVAE:
    latent_dim = config.model.latent_dim if method.uses_latent else 0
    model = SequenceVAE(vocab_size, config.model, latent_dim=latent_dim, summary=method.encoder_summary(),
                        mean_layer=method.posterior_mean_layer(latent_dim))
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

    def log_px_given_z(self, x, z):
        return self.model.log_px_given_z(x, z)

    def forward(self, x):
        return self.model.elbo_terms(x, *self.encode(x))


class Trainer:
    """Owns the model, data, optimisers and schedule; methods call its step functions.

    Encoder and decoder have separate SGD optimisers. For plain SGD, stepping both is the
    same as one optimiser over all parameters; keeping them apart lets a method update one
    side only (aggressive inference training).
    """

    def __init__(self, config: RunConfig, method: Method, corpus: Corpus, device: torch.device,
                 log: Callable[[str], None] = print):
        self.config, self.method, self.corpus, self.device, self.log = config, method, corpus, device, log
        seed_everything(config.seed)
        self.model = build_model(method, len(corpus.vocab), config).to(device)
        self.train_data = BatchedSplit(corpus.splits["train"], config.data.batch_size)
        self.valid_data = BatchedSplit(corpus.splits["valid"], config.data.eval_batch_size)
        self.test_data = BatchedSplit(corpus.splits["test"], config.data.eval_batch_size)
        # The IW bound is costly: a reduced profile scores the first N test sentences in file
        # order (a representative sample; the batches themselves are sorted by length).
        self.iw_test_data = BatchedSplit(corpus.splits["test"][: config.eval.iw_max_sentences],
                                         config.data.eval_batch_size)
        self.generator = torch.Generator().manual_seed(config.seed)  # batch order and random batches
        self.lr = config.train.lr
        self.step = 0  # training batches seen (the schedules' clock)
        self.epoch = 0
        self.curves: list[dict[str, Any]] = []
        self.best_loss = math.inf  # lowest validation loss (the checkpoint kept)
        self.best_state = copy.deepcopy(self.model.state_dict())
        self.schedule_loss = math.inf  # what the learning-rate rule compares with (reference opt_dict)
        self.not_improved = 0
        self.decays = 0
        self.train_seconds = 0.0
        self.eval_seconds = 0.0
        self._make_optimizers()

    # -- optimisers and steps -------------------------------------------------------------
    def _make_optimizers(self) -> None:
        encoder = self.model.encoder_parameters()
        self.encoder_optimizer = torch.optim.SGD(encoder, lr=self.lr) if encoder else None
        self.decoder_optimizer = torch.optim.SGD(self.model.decoder_parameters(), lr=self.lr)

    @property
    def clock(self) -> TrainingClock:
        per_epoch = len(self.train_data)
        return TrainingClock(self.step, per_epoch, self.config.train.max_epochs * per_epoch)

    @property
    def kl_weight(self) -> float:
        return self.method.kl_weight(self.clock)

    def objective(self, batch: torch.Tensor, mu: torch.Tensor | None = None, logvar: torch.Tensor | None = None):
        """Mean over sentences of  -log p(x|z) + kl_weight * kl_penalty(KL per dim),  and the forward output.

        With ``mu`` and ``logvar`` given, q(z|x) has those parameters instead of the encoder's.
        """
        out = self.model(batch) if mu is None else self.model.elbo_terms(batch, mu, logvar)
        return self.penalised(out).mean(), out

    def sentence_objective(self, model, batch: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """The training objective per sentence [B] at given posterior parameters (SVI refines it)."""
        return self.penalised(model.elbo_terms(batch, mu, logvar))

    def penalised(self, out) -> torch.Tensor:
        """-log p(x|z) + kl_weight * kl_penalty(KL per dim), per sentence [B]."""
        return out.reconstruction_nll + self.kl_weight * self.method.kl_penalty(out.kl_per_dim)

    def update(self, batch: torch.Tensor, encoder: bool = True, decoder: bool = True) -> dict[str, float]:
        """Backpropagate the objective on ``batch``; step the chosen sides; return statistics."""
        self.model.zero_grad(set_to_none=True)
        loss, out = self.objective(batch)
        self.check_finite(loss)
        loss.backward()
        self.apply_gradients(encoder, decoder)
        return self.step_statistics(loss, out, batch)

    def check_finite(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"loss is {float(loss.detach())} at epoch {self.epoch + 1}, step {self.step}; lower train.lr "
                "(e.g. --set train.lr=0.5) or check the data")

    def apply_gradients(self, encoder: bool = True, decoder: bool = True) -> None:
        """Clip the gradient norm over all parameters (as the reference), then step the chosen sides."""
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.train.clip_grad_norm)
        if encoder and self.encoder_optimizer is not None:
            self.encoder_optimizer.step()
        if decoder:
            self.decoder_optimizer.step()

    @staticmethod
    def step_statistics(loss: torch.Tensor, out, batch: torch.Tensor) -> dict[str, float]:
        """Sums over the batch, for the epoch's averages."""
        return {"loss": float(loss.detach()) * batch.size(0), "rec": float(out.reconstruction_nll.detach().sum()),
                "kl": float(out.kl.detach().sum()), "sentences": batch.size(0), "words": out.num_words}

    def joint_step(self, batch: torch.Tensor) -> dict[str, float]:
        return self.update(batch)

    def encoder_step(self, batch: torch.Tensor) -> dict[str, float]:
        return self.update(batch, decoder=False)

    def decoder_step(self, batch: torch.Tensor) -> dict[str, float]:
        return self.update(batch, encoder=False)

    def random_train_batch(self) -> torch.Tensor:
        return self.train_data.random_batch(self.generator).to(self.device)

    def validate(self) -> dict[str, float]:
        """Validation metrics (no IW bound), timed as evaluation."""
        return self._evaluate(self.valid_data)

    def test(self) -> dict[str, float]:
        """Test metrics with the importance-weighted NLL, timed as evaluation."""
        return self._evaluate(self.test_data, self.iw_test_data)

    def test_refined(self) -> dict[str, float] | None:
        """Test metrics with the method's refined posterior (SA-VAE's SVI), or None."""
        if not defines(self.method, "refine_posterior"):
            return None
        return self._evaluate(self.test_data, self.iw_test_data, RefinedPosterior(self.model, self.method))

    def validation_mi_at_training_batch_size(self) -> float:
        """Validation MI with the aggregate posterior over batches of the *training* batch size
        (the MI estimate depends on the batch; aggressive training's stopping rule uses this one)."""
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            mi = mean_mutual_information(self.model.encode(x.to(self.device))
                                         for x in self.valid_at_training_batch_size)
        self.model.train(was_training)
        return mi

    @functools.cached_property
    def valid_at_training_batch_size(self) -> BatchedSplit:
        return BatchedSplit(self.corpus.splits["valid"], self.config.data.batch_size)

    def _evaluate(self, data: BatchedSplit, iw_data: BatchedSplit | None = None, model=None) -> dict[str, float]:
        started = time.perf_counter()
        result = evaluate(model or self.model, data, self.config.eval, iw_data, self.device)
        self.eval_seconds += time.perf_counter() - started
        return result

    # -- epochs and schedule --------------------------------------------------------------
    def train_epoch(self, progress: bool, on_step: Callable[["Trainer"], None] | None = None) -> dict[str, float]:
        self.model.train()
        totals = {"loss": 0.0, "rec": 0.0, "kl": 0.0, "sentences": 0, "words": 0}
        started = time.perf_counter()
        batches = self.train_data.shuffled(self.generator)
        if progress:
            from tqdm import tqdm
            batches = tqdm(batches, total=len(self.train_data), desc=f"epoch {self.epoch + 1}", leave=False,
                           unit="batch", file=sys.stderr)
        for batch in batches:
            stats = self.method.train_step(self, batch.to(self.device))
            self.step += 1
            if on_step is not None:
                on_step(self)
            for key in totals:
                totals[key] += stats[key]
            if progress:
                batches.set_postfix(loss=f"{totals['loss'] / totals['sentences']:.2f}",
                                    kl=f"{totals['kl'] / totals['sentences']:.2f}")
        seconds = time.perf_counter() - started
        self.train_seconds += seconds
        n = max(1, totals["sentences"])
        return {"train_loss": totals["loss"] / n, "train_rec": totals["rec"] / n, "train_kl": totals["kl"] / n,
                "train_tokens_per_s": totals["words"] / max(seconds, 1e-9)}

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
            self.lr *= train.lr_decay
            self.model.load_state_dict(self.best_state)
            self._make_optimizers()
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
            row.update({"epoch": self.epoch, "lr": self.lr, "kl_weight": self.kl_weight,
                        **{f"valid_{k}": v for k, v in valid.items() if k not in ("sentences", "words")}})
            stop = self.end_of_epoch(valid)
            row.update(self.method.on_epoch_end(self, self.epoch, valid))  # after: a method may restart selection
            row.update(train_seconds=self.train_seconds, elapsed_seconds=self.train_seconds + self.eval_seconds)
            self.curves.append(row)
            if on_epoch is not None:  # checkpoint first, so an interruption after it loses nothing
                on_epoch(self)
            self.log(f"epoch {self.epoch:3d}  train loss {row['train_loss']:.2f} (KL {row['train_kl']:.2f})  "
                     f"valid ELBO {valid['elbo_nll']:.2f} KL {valid['kl']:.2f} MI {valid['mi']:.2f} "
                     f"AU {valid['au']}  h(x) cos-dist {valid.get('feature_cosine_distance', 0):.3f}  "
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
    STATE_FIELDS = ("lr", "step", "epoch", "curves", "best_loss", "schedule_loss", "not_improved", "decays",
                    "train_seconds", "eval_seconds")

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "best_state": self.best_state,
                "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
                "method": self.method.state_dict(), **{k: getattr(self, k) for k in self.STATE_FIELDS}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.best_state = state["best_state"]
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.method.load_state_dict(state["method"])
        for key in self.STATE_FIELDS:
            setattr(self, key, state[key])
        self._make_optimizers()


def run(config: RunConfig, results: Path = records.DEFAULT_RESULTS, data_dir: str | None = None,
        device: str | None = None, progress: bool | None = None, log: Callable[[str], None] = print,
        resume: bool = True, label: str | None = None,
        on_epoch: Callable[[Trainer], None] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train and evaluate one run and write its record; returns the record.

    A finished record is reused, never recomputed; an interrupted run resumes from its last
    epoch checkpoint. A run that raises (a diverging loss, out of memory) writes a record
    with status ``failed`` and its reason, then re-raises; running it again retries it.
    ``label`` names the run in tables (default: the method); ``on_epoch`` is called after
    each epoch's checkpoint (the sweep reports progress with it); ``extra`` is stored in the
    record as it is (the sweep puts the Ray node there).
    """
    method = build_method(config.method, config.methods, f"profile {config.profile}")
    settings = method_settings(method)
    identifier = records.run_id(config, settings)
    folder = records.run_dir(results, config, identifier, label)
    record_path = folder / records.RECORD_NAME
    if resume and record_path.is_file():
        record = records.load_record(record_path)
        if record.get("status") == "finished":
            log(f"already finished: {record_path}")
            return record
    torch_device = resolve_device(device)
    corpus = load_corpus(config.dataset, config.data, data_dir)
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    trainer = Trainer(config, method, corpus, torch_device, log)
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = folder / records.CHECKPOINT_NAME
    if resume and checkpoint.is_file():
        trainer.load_state_dict(records.load_checkpoint(checkpoint, torch_device))
        log(f"resuming from epoch {trainer.epoch} ({checkpoint})")
    parameters = sum(p.numel() for p in trainer.model.parameters())
    log(f"{config.method} on {corpus.name} [{config.profile}] seed {config.seed}: "
        f"{parameters / 1e6:.2f}M parameters, vocabulary "
        f"{len(corpus.vocab)}, {len(corpus.splits['train'])} training sentences, device {torch_device}")
    if config.dataset == SYNTHETIC:
        log("  data: built-in synthetic corpus (no data directory needed)")
    record: dict[str, Any] = {
        "run_id": identifier, "label": label or config.method, "method": config.method,
        "dataset": config.dataset, "profile": config.profile,
        "seed": config.seed, "started_at": started_at, "config": config.to_dict(), "method_settings": settings,
        "data": corpus.summary(), "parameters": parameters,
        "code": records.code_version(), "environment": records.environment(torch_device), **(extra or {}),
    }
    def end_of_epoch(t: Trainer) -> None:
        records.save_checkpoint_atomic(checkpoint, t.state_dict())
        if on_epoch is not None:
            on_epoch(t)

    if progress is None:
        progress = sys.stderr.isatty()
    try:
        stop_reason = trainer.fit(progress, on_epoch=end_of_epoch)
    except Exception as err:  # recorded, then raised again; KeyboardInterrupt keeps the checkpoint only
        reason = str(err) if isinstance(err, BenchError) else f"{type(err).__name__}: {err}"
        record.update(status="failed", error=reason, curves=trainer.curves,
                      finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        records.write_json_atomic(record_path, record)
        raise
    trainer.model.load_state_dict(trainer.best_state)
    eval_before = trainer.eval_seconds
    test = trainer.test()
    refined = trainer.test_refined()
    best_valid = min(trainer.curves, key=lambda row: row["valid_elbo_nll"])
    record.update(
        status="finished", stop_reason=stop_reason, epochs=trainer.epoch,
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        metrics={"test": test, "best_valid_epoch": best_valid["epoch"],
                 "valid": {k[len("valid_"):]: v for k, v in best_valid.items() if k.startswith("valid_")},
                 **({"test_refined": refined} if refined is not None else {})},
        timing={"train_seconds": trainer.train_seconds, "valid_eval_seconds": eval_before,
                "test_eval_seconds": trainer.eval_seconds - eval_before,
                "train_hours": trainer.train_seconds / 3600},
        curves=trainer.curves,
    )
    records.write_json_atomic(record_path, record)
    checkpoint.unlink(missing_ok=True)
    log(f"test: NLL {test['nll']:.2f} (IW, K={test['iw_samples']}, {test['iw_sentences']} sentences)  "
        f"PPL {test['ppl']:.2f}  KL {test['kl']:.2f}  MI {test['mi']:.2f}  AU {test['au']}  "
        f"train {trainer.train_seconds:.0f}s  eval {trainer.eval_seconds:.0f}s")
    log(f"record: {record_path}")
    return record


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.train", description="Train and evaluate one method on one dataset; "
        "writes one self-describing record (metrics, timings, curves, config, hardware).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  python -m bench.train --method vae --dataset synthetic --profile smoke\n"
               "  python -m bench.train --method vae --dataset yahoo_resplit --profile cpu_text --data-dir ../shared/data\n"
               "  python -m bench.train --method pooling+kl_anneal --dataset ptb --set model.latent_dim=16\n")
    what = parser.add_argument_group("what to run")
    what.add_argument("--method", metavar="NAME", help="method name, or parts joined by '+' (see --list-methods)")
    what.add_argument("--dataset", metavar="NAME", default=SYNTHETIC,
                      help="folder under the data directory, or 'synthetic' (default)")
    what.add_argument("--profile", metavar="NAME", default="cpu",
                      help=f"settings profile: {', '.join(available_profiles())} or a YAML path (default: cpu)")
    what.add_argument("--seed", type=int, default=0, metavar="N")
    what.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", dest="overrides",
                      help="override a setting, e.g. model.latent_dim=16 or kl_anneal.warm_up=5 (repeatable)")
    where = parser.add_argument_group("where")
    where.add_argument("--data-dir", metavar="DIR", help="data directory (default: $BENCH_DATA_DIR)")
    where.add_argument("--out", metavar="DIR", type=Path, default=records.DEFAULT_RESULTS,
                       help="results folder (default: results/)")
    where.add_argument("--device", metavar="DEV", default="auto", help="cpu, cuda or auto (default)")
    other = parser.add_argument_group("other")
    other.add_argument("--restart", action="store_true", help="ignore an existing record or checkpoint")
    other.add_argument("--list-methods", action="store_true", help="list registered methods and exit")
    other.add_argument("--quiet", action="store_true", help="print only the final result line")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_methods:
        from bench.method import method_class
        for name in available_methods():
            doc = (method_class(name).__doc__ or "").strip().splitlines()
            print(f"{name:14s} {doc[0] if doc else ''}")
        return 0
    if not args.method:
        raise BenchError("--method is required (see --list-methods)")
    config = build_run_config(args.method, args.dataset, args.profile, args.seed, parse_overrides(args.overrides))
    log = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr))
    record = run(config, args.out, args.data_dir, args.device, progress=None if not args.quiet else False,
                 log=log, resume=not args.restart)
    test = record["metrics"]["test"]
    print(f"{record['method']} {record['dataset']} seed {record['seed']}: NLL {test['nll']:.2f} "
          f"PPL {test['ppl']:.2f} KL {test['kl']:.2f} MI {test['mi']:.2f} AU {test['au']}")
    return 0


if __name__ == "__main__":
    run_cli(main)
