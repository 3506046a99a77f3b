"""Throughput benchmark: ``python -m bench.perf --profile cpu``.

Measures, on the current device, training tokens/s of each chosen method's update step and
importance-weighted evaluation sentences/s, for a profile's model size, batch size,
sentence length and vocabulary, on random sentences (speed does not depend on the words).
Speeds are reported as absolute numbers and as ratios: method / first method, and
against an earlier run saved with ``--json`` (``--baseline``), so versions and hardware can
be compared. Nothing here is asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from tabulate import tabulate

from bench.config import available_profiles, build_run_config, parse_overrides
from bench.data import Corpus, Vocabulary, pad_batch
from bench.errors import BenchError, run_cli
from bench.method import build_method
from bench.metrics import iw_log_likelihood
from bench.records import environment
from bench.loop import Trainer, resolve_device

DEFAULT_VOCAB = 20000  # Yahoo/Yelp vocabulary when the profile has no cap
DEFAULT_LENGTH = 80  # about the mean Yahoo document length


def random_corpus(vocab_size: int, length: int, sentences: int, seed: int = 0) -> Corpus:
    generator = torch.Generator().manual_seed(seed)
    vocab = Vocabulary([f"w{i}" for i in range(vocab_size - 4)])
    ids = torch.randint(4, vocab_size, (sentences, length), generator=generator).tolist()
    return Corpus("random", vocab, {"train": ids, "valid": ids[:64], "test": ids[:64]}, "random tokens")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_training(trainer: Trainer, steps: int, warmup: int = 2) -> float:
    """Training tokens per second over ``steps`` updates, after ``warmup`` untimed ones."""
    batches = [b.to(trainer.device) for b in trainer.train_data]
    for i in range(warmup):
        trainer.method.train_step(trainer.context, batches[i % len(batches)])
    synchronize(trainer.device)
    started, words = time.perf_counter(), 0
    for i in range(steps):
        words += trainer.method.train_step(trainer.context, batches[i % len(batches)])["words"]
    synchronize(trainer.device)
    return words / (time.perf_counter() - started)


def time_iw(trainer: Trainer, sentences: int, samples: int) -> float:
    """IW-evaluation sentences per second with ``samples`` importance samples."""
    x = pad_batch(trainer.corpus.splits["test"][:sentences]).to(trainer.device)
    trainer.model.eval()
    iw_log_likelihood(trainer.model, x[:1], 2)
    synchronize(trainer.device)
    started = time.perf_counter()
    iw_log_likelihood(trainer.model, x, samples, max_elements=trainer.config.eval.iw_max_elements)
    synchronize(trainer.device)
    return sentences / (time.perf_counter() - started)


def build_trainer(name: str, profile: str, overrides: dict, device: torch.device, steps: int) -> Trainer:
    """A trainer for ``name`` on random sentences shaped like the profile's data."""
    config = build_run_config(name, "random", profile, 0, overrides)
    vocab = config.data.max_vocab or DEFAULT_VOCAB
    length = config.data.max_length or DEFAULT_LENGTH
    corpus = random_corpus(vocab, length, max(4, steps + 2) * config.data.batch_size)
    return Trainer(config, build_method(name, config.methods), corpus, device, log=lambda m: None)


def _packed_trial(name, profile, overrides, device, steps, threads, barrier, queue) -> None:
    """One of N concurrent trials: warm up, wait for the others, time ``steps`` updates."""
    torch.set_num_threads(threads)
    trainer = build_trainer(name, profile, overrides, device, steps)
    batches = [b.to(device) for b in trainer.train_data]
    for batch in batches[:2]:
        trainer.method.train_step(trainer.context, batch)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    barrier.wait()
    tokens_per_s = time_training(trainer, steps, warmup=0)
    if device.type == "cuda":
        memory = torch.cuda.max_memory_allocated(device)
    else:
        import psutil
        memory = psutil.Process().memory_info().rss
    queue.put((tokens_per_s, memory))


def measure_packing(name: str, profile: str, overrides: dict, device: torch.device, steps: int,
                    counts: list[int]) -> list[list[str]]:
    """Training throughput of N concurrent trials on one device (fractional-GPU packing)."""
    import multiprocessing
    import os
    context = multiprocessing.get_context("spawn")
    rows = []
    for count in counts:
        barrier, queue = context.Barrier(count), context.Queue()
        threads = max(1, (os.cpu_count() or 1) // count)
        workers = [context.Process(target=_packed_trial, args=(name, profile, overrides, device, steps, threads,
                                                                barrier, queue)) for _ in range(count)]
        for worker in workers:
            worker.start()
        results = [queue.get() for _ in workers]
        for worker in workers:
            worker.join()
        total = sum(r[0] for r in results)
        rows.append([str(count), f"{total:,.0f}", f"{total / count:,.0f}",
                     f"{max(r[1] for r in results) / 2**30:.2f}"])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.perf", description=__doc__.split("\n\n")[0].replace("``", "`"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m bench.perf --profile cpu\n"
               "  python -m bench.perf --profile paper --device cuda --methods vae,pooling,aggressive\n"
               "  python -m bench.perf --profile cpu --json new.json --baseline old.json\n"
               "  python -m bench.perf --profile paper --device cuda --concurrent 1,2,4,8   # GPU packing\n")
    parser.add_argument("--profile", default="cpu", metavar="NAME", help=f"{', '.join(available_profiles())}")
    parser.add_argument("--methods", default="vae", metavar="A,B", help="methods to time (default: vae)")
    parser.add_argument("--steps", type=int, default=20, metavar="N", help="timed training steps (default 20)")
    parser.add_argument("--iw-sentences", type=int, default=None, metavar="N",
                        help="sentences in the IW timing (default: the profile's eval batch size)")
    parser.add_argument("--device", default="auto", metavar="DEV", help="cpu, cuda or auto")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="SECTION.KEY=VALUE")
    parser.add_argument("--concurrent", metavar="1,2,4,8",
                        help="instead: throughput of N concurrent trials of the first method on one device "
                             "(how many trials to pack per GPU), total and per trial, with peak memory per trial")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the measurements here")
    parser.add_argument("--baseline", type=Path, metavar="FILE", help="an earlier --json to compare with")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    overrides = parse_overrides(args.overrides)
    if args.concurrent:
        try:
            counts = [int(c) for c in args.concurrent.split(",")]
        except ValueError:
            raise BenchError(f"--concurrent expects integers like 1,2,4,8, got '{args.concurrent}'") from None
        name = args.methods.split(",")[0].strip()
        rows = measure_packing(name, args.profile, overrides, device, args.steps, counts)
        memory = "peak GPU memory per trial (GiB)" if device.type == "cuda" else "peak RSS per trial (GiB)"
        print(f"{name}, profile {args.profile}, device {environment(device)['hardware']['gpu'] or 'CPU'}")
        print(tabulate(rows, headers=["concurrent trials", "total tok/s", "per trial tok/s", memory],
                       disable_numparse=True))
        return 0
    rows, measurements = [], {}
    for name in [m.strip() for m in args.methods.split(",") if m.strip()]:
        trainer = build_trainer(name, args.profile, overrides, device, args.steps)
        config = trainer.config
        tokens_per_s = time_training(trainer, args.steps)
        iw_sentences = args.iw_sentences or config.data.eval_batch_size
        sentences_per_s = time_iw(trainer, min(iw_sentences, 64), config.eval.iw_samples)
        measurements[name] = {"train_tokens_per_s": tokens_per_s, "iw_sentences_per_s": sentences_per_s}
        rows.append([name, f"{tokens_per_s:,.0f}", f"{sentences_per_s:,.2f}"])
    first = next(iter(measurements.values()))
    for row, values in zip(rows, measurements.values()):
        row.append(f"{values['train_tokens_per_s'] / first['train_tokens_per_s']:.2f}")
    headers = ["method", "train tok/s", f"IW sent/s (K={config.eval.iw_samples})", "speed vs first"]
    if args.baseline:
        try:
            old = json.loads(args.baseline.read_text())["measurements"]
        except (OSError, ValueError, KeyError):
            raise BenchError(f"--baseline {args.baseline}: not a file written by `bench.perf --json`") from None
        headers += ["train vs baseline", "IW vs baseline"]
        for row, (name, values) in zip(rows, measurements.items()):
            base = old.get(name)
            row += ([f"{values[k] / base[k]:.2f}" for k in ("train_tokens_per_s", "iw_sentences_per_s")]
                    if base else ["-", "-"])
    hardware = environment(device)["hardware"]
    vocab, length = len(trainer.corpus.vocab), config.data.max_length or DEFAULT_LENGTH
    print(f"profile {args.profile}: embed {config.model.embed_dim}, hidden {config.model.encoder_hidden}/"
          f"{config.model.decoder_hidden}, latent {config.model.latent_dim}, vocab {vocab}, length {length}, "
          f"batch {config.data.batch_size}; device {hardware['gpu'] or 'CPU'} ({hardware['torch_threads']} threads)")
    print(tabulate(rows, headers=headers, disable_numparse=True))
    if args.json:
        args.json.write_text(json.dumps({"profile": args.profile, "hardware": hardware,
                                         "measurements": measurements}, indent=1))
    return 0


if __name__ == "__main__":
    run_cli(main)
