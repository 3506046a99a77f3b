"""Throughput benchmark: ``python -m bench perf --profile cpu``.

Measures, on the current device, training tokens/s of each chosen method's update step, the
arithmetic rate that implies (GFLOP/s, from the model's multiply-adds per token, x3 for the
backward pass) and its share of the device's float32 matrix-product rate (measured here on a
large product: the ceiling for this arithmetic), importance-weighted evaluation sentences/s
and peak memory, for a profile's model size, batch size, sentence length and vocabulary, on
random sentences (speed does not depend on the words). ``--bf16`` also times bfloat16 training (autocast, ``train.bf16``) and
bfloat16 IW evaluation (``eval.iw_bf16``) and reports the IW NLL change on the same samples
(on a model after a few steps, whose logits are small: the change on trained models is
measured by evaluating them both ways, docs/speed.md). Speeds are reported as absolute numbers and as
ratios: method / first method, and against an earlier run saved with ``--json``
(``--baseline``), so versions and hardware can be compared. Nothing here is asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any

import torch
from tabulate import tabulate

from bench.core.config import available_profiles, build_run_config, parse_overrides
from bench.core.data import Corpus, Vocabulary, pad_batch
from bench.core.errors import BenchError, run_cli
from bench.core.method import build_method
from bench.core.environment import environment
from bench.core.files import make_output_dir
from bench.core.loop import Trainer, cpu_supports_bf16, resolve_device
from bench.core.metrics import iw_chunk_elements, iw_log_likelihood

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
        trainer.step_once(batches[i % len(batches)])
    synchronize(trainer.device)
    started, words = time.perf_counter(), 0
    for i in range(steps):
        words += trainer.step_once(batches[i % len(batches)])["words"]
    synchronize(trainer.device)
    return float(words) / (time.perf_counter() - started)  # words: a tensor, read once (no per-step sync)


def time_iw(trainer: Trainer, sentences: int, samples: int, bf16: bool = False) -> tuple[float, torch.Tensor]:
    """IW-evaluation sentences per second with ``samples`` importance samples, and the NLLs
    (noise seeded, so that float32 and bfloat16 are compared on the same samples)."""
    x = pad_batch(trainer.corpus.splits["test"][:sentences]).to(trainer.device)
    was_training = trainer.model.training
    trainer.model.eval()
    try:
        iw_log_likelihood(trainer.model, x[:1], 2, bf16=bf16)
        synchronize(trainer.device)
        torch.manual_seed(0)
        started = time.perf_counter()
        nll = -iw_log_likelihood(trainer.model, x, samples,
                                 max_elements=iw_chunk_elements(trainer.config.eval.iw_max_elements, trainer.device),
                                 bf16=bf16)
        synchronize(trainer.device)
    finally:  # training timed after this must run in train mode (dropout; cuDNN's backward needs it)
        trainer.model.train(was_training)
    return sentences / (time.perf_counter() - started), nll.double().cpu()


def flops_per_token(config, vocab_size: int) -> float:
    """Multiply-adds x 2 of one forward pass per predicted token: encoder LSTM 8 H (E + H) per
    direction for its first layer and 8 H (D H + H) for each further one (D directions),
    decoder LSTM 8 H (E + Z + H), latent to cell 2 Z H / T (ignored), output layer 2 H V."""
    m = config.model
    directions = 2 if m.encoder_bidirectional else 1
    encoder = directions * 8 * m.encoder_hidden * (
        (m.embed_dim + m.encoder_hidden) + (m.encoder_layers - 1) * (directions * m.encoder_hidden + m.encoder_hidden))
    decoder = 8 * m.decoder_hidden * (m.embed_dim + m.latent_dim + m.decoder_hidden)
    return encoder + decoder + 2 * m.decoder_hidden * vocab_size


def matmul_gflop_per_s(device: torch.device, size: int = 2048) -> float:
    """The device's achievable float32 arithmetic rate: GFLOP/s of a large square matrix
    product (the operation that dominates training and IW evaluation), best of 4 runs."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    best = float("inf")
    for _ in range(4):
        synchronize(device)
        started = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - started)
    return 2 * size ** 3 / best / 1e9


def cuda_context_gib(device: torch.device) -> float:
    """What a process holds on the GPU beyond torch's allocator: the CUDA context and its
    libraries (cuBLAS, cuDNN workspaces), read as the device's used memory less torch's reserved
    blocks while this process is the device's only user (before packed trials start)."""
    torch.ones(1, device=device) @ torch.ones(1, 1, device=device)  # create the context and cuBLAS
    free, total = torch.cuda.mem_get_info(device)
    return max(0.0, (total - free - torch.cuda.memory_reserved(device)) / 2**30)


def peak_memory_gib(device: torch.device, context_gib: float = 0.0) -> float:
    """Peak memory a trial needs: on a GPU torch's peak *reserved* memory (what its allocator
    holds, which another process cannot use) plus the process's CUDA context; on a CPU the
    process's peak resident memory (so far: with several methods in one run, a later row
    includes the earlier ones' peak)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_reserved(device) / 2**30 + context_gib
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def build_trainer(name: str, profile: str, overrides: dict, device: torch.device, steps: int,
                  length: int | None = None) -> Trainer:
    """A trainer for ``name`` on random sentences shaped like the profile's data: ``length``
    words each (default: the profile's cap, else DEFAULT_LENGTH)."""
    config = build_run_config(name, "random", profile, 0, overrides)
    vocab = config.data.max_vocab or DEFAULT_VOCAB
    length = length or config.data.max_length or DEFAULT_LENGTH
    corpus = random_corpus(vocab, length, max(4, steps + 2) * config.data.batch_size)
    return Trainer(config, build_method(name, config.methods), corpus, device, log=lambda m: None)


def _packed_trial(name, profile, overrides, device, steps, threads, barrier, queue, length, count, context) -> None:
    """One of N concurrent trials: warm up, wait for the others, time ``steps`` updates. On a GPU
    each trial may use 1/N of its memory (as Ray's fractional GPUs would share it): a trial
    that needs more fails here with torch's out-of-memory error instead of starving the others."""
    torch.set_num_threads(threads)
    if device.type == "cuda":
        torch.cuda.set_per_process_memory_fraction(1.0 / count, device)
    try:
        trainer = build_trainer(name, profile, overrides, device, steps, length)
    except torch.OutOfMemoryError:
        barrier.abort()
        queue.put(("out of memory", 0.0))
        return
    batches = [b.to(device) for b in trainer.train_data]
    for batch in batches[:2]:
        trainer.step_once(batch)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        barrier.wait()
        queue.put((time_training(trainer, steps, warmup=0), peak_memory_gib(device, context)))
    except torch.OutOfMemoryError:
        barrier.abort()
        queue.put(("out of memory", 0.0))
    except threading.BrokenBarrierError:  # another trial failed: this count is not measurable
        queue.put(("another trial failed", 0.0))


def measure_packing(name: str, profile: str, overrides: dict, device: torch.device, steps: int,
                    counts: list[int], length: int | None = None, timeout_s: float = 300.0) -> list[dict[str, Any]]:
    """Training throughput of N concurrent trials on one device (fractional-GPU packing). A
    count whose trials do not all report within ``timeout_s`` (one died, or hangs) is a row
    saying so, and the next count is measured."""
    import multiprocessing
    import os
    import queue as queues
    spawn = multiprocessing.get_context("spawn")
    context = cuda_context_gib(device) if device.type == "cuda" else 0.0
    rows = []
    for count in counts:
        barrier, queue = spawn.Barrier(count), spawn.Queue()
        threads = max(1, (os.cpu_count() or 1) // count)
        workers = [spawn.Process(target=_packed_trial, args=(name, profile, overrides, device, steps, threads,
                                                              barrier, queue, length, count, context))
                   for _ in range(count)]
        for worker in workers:
            worker.start()
        deadline, results = time.monotonic() + timeout_s, []
        try:
            for _ in workers:
                results.append(queue.get(timeout=max(0.1, deadline - time.monotonic())))
        except queues.Empty:
            results.append((f"no result within {timeout_s:.0f} s (exit codes {[w.exitcode for w in workers]})", 0.0))
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.kill()
        failure = next((r[0] for r in results if isinstance(r[0], str)), None)
        if failure:
            rows.append({"trials": count, "error": failure})
            continue
        total = sum(r[0] for r in results)
        rows.append({"trials": count, "total_tokens_per_s": total, "per_trial_tokens_per_s": total / count,
                     "peak_memory_gib_per_trial": max(r[1] for r in results), "cuda_context_gib": context})
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench perf", description=__doc__.split("\n\n")[0].replace("``", "`"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m bench perf --profile cpu\n"
               "  python -m bench perf --profile paper --device cuda --methods vae,pooling,aggressive --bf16\n"
               "  python -m bench perf --profile cpu --json new.json --baseline old.json\n"
               "  python -m bench perf --profile paper --device cuda --concurrent 1,2,4,8   # GPU packing\n"
               "  python -m bench perf --profile cpu --eval-share synthetic --versus eval.iw_max_sentences=200\n")
    parser.add_argument("--profile", default="cpu", metavar="NAME", help=f"{', '.join(available_profiles())}")
    parser.add_argument("--methods", default="vae", metavar="A,B", help="methods to time (default: vae)")
    parser.add_argument("--steps", type=int, default=20, metavar="N", help="timed training steps (default 20)")
    parser.add_argument("--length", type=int, metavar="N",
                        help=f"words per sentence (default: the profile's cap, else {DEFAULT_LENGTH}, about the mean "
                             "Yahoo document); peak memory follows the longest batch: Yahoo documents reach 200")
    parser.add_argument("--iw-sentences", type=int, default=None, metavar="N",
                        help="sentences in the IW timing (default: the profile's eval batch size, at most 64)")
    parser.add_argument("--bf16", action="store_true",
                        help="also time bfloat16 training (train.bf16) and IW evaluation (eval.iw_bf16), "
                             "with the IW NLL change on the same samples")
    parser.add_argument("--device", default="auto", metavar="DEV", help="cpu, cuda or auto")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="SECTION.KEY=VALUE")
    parser.add_argument("--concurrent", metavar="1,2,4,8",
                        help="instead: throughput of N concurrent trials of the first method on one device "
                             "(how many trials to pack per GPU), total and per trial, with peak memory per trial")
    parser.add_argument("--eval-share", metavar="DATASET",
                        help="instead: evaluation's share of a run of the first method on DATASET's real data "
                             "(synthetic, or a folder of --data-dir), projected from one timed epoch, validation "
                             "and test pass; with --versus, without and with those settings side by side")
    parser.add_argument("--versus", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="--eval-share: settings (e.g. smaller evaluation sets) timed beside those of --set")
    parser.add_argument("--data-dir", metavar="DIR", help="datasets folder for --eval-share (default: $BENCH_DATA_DIR)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the measurements here")
    parser.add_argument("--baseline", type=Path, metavar="FILE", help="an earlier --json to compare with")
    return parser


def measure(name: str, args, overrides: dict, device: torch.device) -> tuple[Trainer, dict[str, float]]:
    """One method's training tokens/s, achieved GFLOP/s, IW sentences/s (and bf16), peak memory."""
    trainer = build_trainer(name, args.profile, overrides, device, args.steps, args.length)
    config = trainer.config
    tokens_per_s = time_training(trainer, args.steps)
    sentences = min(args.iw_sentences or config.data.eval_batch_size, 64)
    iw_per_s, nll = time_iw(trainer, sentences, config.eval.iw_samples)
    flops = flops_per_token(config, len(trainer.corpus.vocab))
    values = {"train_tokens_per_s": tokens_per_s, "train_gflop_per_s": 3 * flops * tokens_per_s / 1e9,
              "iw_sentences_per_s": iw_per_s, "peak_memory_gib": peak_memory_gib(device)}
    if args.bf16:
        bf16_per_s, bf16_nll = time_iw(trainer, sentences, config.eval.iw_samples, bf16=True)
        trainer.context.bf16 = True  # as train.bf16 would set it; same model and batches
        trainable = device.type != "cpu" or cpu_supports_bf16()  # else the LSTM has no bf16 kernel
        values.update(train_bf16_tokens_per_s=time_training(trainer, args.steps) if trainable else None,
                      iw_bf16_sentences_per_s=bf16_per_s,
                      iw_bf16_max_nll_change=float((bf16_nll - nll).abs().max()),
                      iw_bf16_mean_nll_change=float((bf16_nll - nll).mean()))
    return trainer, values


def read_baseline(path: Path, profile: str | None = None) -> dict:
    """An earlier ``--json`` file, checked before anything is measured: it exists, it is one, and
    (with ``profile``) it measured the same profile, else its ratios would compare other models."""
    if not path.is_file():
        raise BenchError(f"--baseline {path}: file not found; give a file written by `python -m bench perf --json`")
    try:
        found = json.loads(path.read_text())
        found["measurements"]
    except (OSError, ValueError, KeyError, TypeError):
        raise BenchError(f"--baseline {path}: not a file written by `python -m bench perf --json`") from None
    if profile is not None and found.get("profile") not in (None, profile):
        raise BenchError(f"--baseline {path} measured the '{found.get('profile')}' profile, not '{profile}'; compare "
                         "with a baseline of the same profile")
    return found


def table_rows(measurements: dict[str, dict], baseline: Path | None, bf16: bool,
               matmul_rate: float) -> tuple[list[str], list[list[str]]]:
    first = next(iter(measurements.values()))
    headers = ["method", "train tok/s", "train GFLOP/s", "of matmul rate", "IW sent/s", "peak GiB", "speed vs first"]
    rows = [[name, f"{v['train_tokens_per_s']:,.0f}", f"{v['train_gflop_per_s']:.1f}",
             f"{v['train_gflop_per_s'] / matmul_rate:.0%}", f"{v['iw_sentences_per_s']:,.3f}",
             f"{v['peak_memory_gib']:.2f}", f"{v['train_tokens_per_s'] / first['train_tokens_per_s']:.2f}"]
            for name, v in measurements.items()]
    if bf16:
        headers += ["bf16 train speed", "bf16 IW speed", "max |ΔNLL| bf16"]
        for row, v in zip(rows, measurements.values()):
            bf16_train = v["train_bf16_tokens_per_s"]
            row += [f"{bf16_train / v['train_tokens_per_s']:.2f}x" if bf16_train else "no bf16 on this CPU",
                    f"{v['iw_bf16_sentences_per_s'] / v['iw_sentences_per_s']:.2f}x", f"{v['iw_bf16_max_nll_change']:.4f}"]
    if baseline:
        old = read_baseline(baseline)["measurements"]
        headers += ["train vs baseline", "IW vs baseline"]
        for row, (name, values) in zip(rows, measurements.items()):
            base = old.get(name)
            row += ([f"{values[k] / base[k]:.2f}" for k in ("train_tokens_per_s", "iw_sentences_per_s")]
                    if base else ["-", "-"])
    return headers, rows


def measure_eval_share(name: str, profile: str, dataset: str, overrides: dict, device: torch.device,
                       data_dir: str | None) -> dict[str, float]:
    """Seconds of one training epoch, one validation pass and the test pass (IW bound included)
    of a fresh ``name`` run, and evaluation's share of a run of ``max_epochs`` epochs projected
    from them: (E x validation + test) / (E x (epoch + validation) + test). Evaluation costs the
    same for a trained model; a method whose epochs change cost (aggressive training's inner
    loop stops) is projected from its first."""
    from bench.core.data import load_corpus
    config = build_run_config(name, dataset, profile, 0, overrides)
    corpus = load_corpus(dataset, config.data, data_dir)
    trainer = Trainer(config, build_method(name, config.methods), corpus, device, log=lambda m: None)
    seconds = {}
    for part, work in (("epoch_s", lambda: trainer.train_epoch(progress=False)), ("validation_s", trainer.validate),
                       ("test_s", trainer.test)):
        synchronize(device)
        started = time.perf_counter()
        work()
        synchronize(device)
        seconds[part] = time.perf_counter() - started
    epochs = config.train.max_epochs
    evaluation = epochs * seconds["validation_s"] + seconds["test_s"]
    run = epochs * seconds["epoch_s"] + evaluation
    return {**seconds, "epochs": epochs, "valid_sentences": len(corpus.splits["valid"]),
            "test_sentences": len(corpus.splits["test"]), "iw_sentences": len(trainer.iw_test_data.order),
            "iw_samples": config.eval.iw_samples, "projected_run_s": run, "eval_share": evaluation / run}


def report_eval_share(args, device: torch.device, overrides: dict) -> None:
    """``--eval-share``: evaluation's share with the profile and ``--set``, and with ``--versus`` added beside it."""
    from bench.cli.sweep import merge_settings
    name = args.methods.split(",")[0].strip()
    versus = merge_settings(overrides, parse_overrides(args.versus))
    settings = {" ".join(args.overrides) or "profile": overrides,
                **({"+ " + " ".join(args.versus): versus} if args.versus else {})}
    rows = {label: measure_eval_share(name, args.profile, args.eval_share, given, device, args.data_dir)
            for label, given in settings.items()}
    print(f"evaluation share of a {name} run on {args.eval_share}, profile {args.profile} "
          f"(one epoch, validation and test pass timed, {next(iter(rows.values()))['epochs']} epochs projected):")
    print(tabulate([[label, f"{r['valid_sentences']}/{r['test_sentences']}", f"{r['iw_sentences']} x {r['iw_samples']}",
                     f"{r['epoch_s']:.1f}", f"{r['validation_s']:.2f}", f"{r['test_s']:.1f}", f"{r['projected_run_s']:.0f}",
                     f"{r['eval_share']:.0%}"] for label, r in rows.items()],
                   headers=["setting", "valid/test sentences", "IW sentences x K", "epoch s", "validation s",
                            "test s", "run s", "evaluation"], disable_numparse=True))
    if args.json:
        args.json.write_text(json.dumps({"profile": args.profile, "method": name, "dataset": args.eval_share,
                                         "hardware": environment(device)["hardware"], "torch": torch.__version__,
                                         "eval_share": rows}, indent=1))


def report_packing(args, device: torch.device, overrides: dict) -> None:
    """``--concurrent``: print (and with ``--json`` save) the packing table."""
    try:
        counts = [int(c) for c in args.concurrent.split(",")]
    except ValueError:
        raise BenchError(f"--concurrent expects integers like 1,2,4,8, got '{args.concurrent}'") from None
    name = args.methods.split(",")[0].strip()
    rows = measure_packing(name, args.profile, overrides, device, args.steps, counts, args.length)
    memory = "peak GPU memory per trial, reserved + context (GiB)" if device.type == "cuda" else "peak RSS per trial (GiB)"
    hardware = environment(device)["hardware"]
    print(f"{name}, profile {args.profile}, device {hardware['gpu'] or 'CPU'}")
    print(tabulate([[r["trials"], r["error"], "", ""] if "error" in r else
                    [r["trials"], f"{r['total_tokens_per_s']:,.0f}", f"{r['per_trial_tokens_per_s']:,.0f}",
                     f"{r['peak_memory_gib_per_trial']:.2f}"] for r in rows],
                   headers=["concurrent trials", "total tok/s", "per trial tok/s", memory], disable_numparse=True))
    if args.json:
        args.json.write_text(json.dumps({"profile": args.profile, "method": name, "hardware": hardware,
                                         "torch": torch.__version__, "steps": args.steps, "packing": rows},
                                        indent=1))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = resolve_device(args.device)
    overrides = parse_overrides(args.overrides)
    if args.json is not None:
        make_output_dir(args.json.parent)  # a bad path fails before the measurements, not after
    if args.baseline is not None:
        read_baseline(args.baseline, args.profile)  # likewise a missing or other-profile baseline
    if args.concurrent:
        report_packing(args, device, overrides)
        return 0
    if args.eval_share:
        report_eval_share(args, device, overrides)
        return 0
    measurements = {}
    for name in [m.strip() for m in args.methods.split(",") if m.strip()]:
        trainer, measurements[name] = measure(name, args, overrides, device)
    config, hardware = trainer.config, environment(device)["hardware"]
    matmul_rate = matmul_gflop_per_s(device)
    shape = {"embed": config.model.embed_dim, "hidden": config.model.encoder_hidden, "latent": config.model.latent_dim,
             "vocab": len(trainer.corpus.vocab), "length": args.length or config.data.max_length or DEFAULT_LENGTH,
             "batch": config.data.batch_size, "iw_samples": config.eval.iw_samples}
    print(f"profile {args.profile}: " + ", ".join(f"{k} {v}" for k, v in shape.items())
          + f"; device {hardware['gpu'] or 'CPU'} ({hardware['torch_threads']} threads), "
          f"float32 matmul rate {matmul_rate:.0f} GFLOP/s")
    headers, rows = table_rows(measurements, args.baseline, args.bf16, matmul_rate)
    print(tabulate(rows, headers=headers, disable_numparse=True))
    if args.json:
        args.json.write_text(json.dumps({"profile": args.profile, "shape": shape, "hardware": hardware,
                                         "torch": torch.__version__, "matmul_gflop_per_s": matmul_rate,
                                         "measurements": measurements}, indent=1))
    return 0


if __name__ == "__main__":
    run_cli(main)
