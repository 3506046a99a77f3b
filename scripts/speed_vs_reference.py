"""Training and IW-evaluation speed of this project side by side with He et al.'s implementation.

    python scripts/speed_vs_reference.py --reference ~/src/vae-lagging-encoder
    python scripts/speed_vs_reference.py --reference REF --sizes 512/1024@500 --device cuda --json out.json

``--reference`` is the path of your own checkout of ``jxhe/vae-lagging-encoder`` (its code is
imported from there and never copied into this repository). For each size
(``EMBED/HIDDEN@K``: embedding and LSTM widths, importance samples), both sides get the same
model shape (latent 32, vocabulary ``--vocab``, decoder dropout 0.5, SGD lr 1, clipping 5), the
same batches of random ``--length``-token sentences (speed does not depend on the words), in
one process with ``--threads`` threads, rounds alternating (which side goes first alternates
too), so that load from elsewhere falls on both sides alike.

- Training: this project's ``Method.train_step`` of the standard VAE against the reference's
  ``text.py`` inner step (``vae.loss`` with one sample, ``loss.mean()``, ``backward``,
  ``clip_grad_norm_(5)``, the encoder and decoder SGD steps, and the two ``.item()`` reads it
  does per batch).
- IW NLL: ``bench.core.metrics.iw_log_likelihood`` on all ``--iw-sentences`` sentences at once (as
  ``bench.core.metrics.evaluate`` runs it; with ``--bf16`` also with ``eval.iw_bf16``) against the
  reference's ``calc_iwnll``: one sentence per pass (``batch_size=1``), ``vae.nll_iw(x, K, ns=100)``.

Prints tokens/s and sentences/s of both sides (median over rounds) and the ratios (this
project / reference; the range over rounds in brackets).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from bench.core.data import pad_batch  # noqa: E402
from bench.core.errors import BenchError, run_cli  # noqa: E402
from bench.core.loop import resolve_device  # noqa: E402
from bench.core.metrics import iw_log_likelihood  # noqa: E402
from bench.cli.perf import build_trainer, synchronize  # noqa: E402

LATENT = 32
REFERENCE_CHUNK = 100  # the reference's `ns`: samples per decoder pass in nll_iw


def parse_sizes(text: str) -> list[tuple[int, int, int]]:
    """``128/256@100,512/1024@500`` -> [(embed, hidden, K), ...]."""
    sizes = []
    for item in text.split(","):
        try:
            widths, samples = item.split("@")
            embed, hidden = widths.split("/")
            sizes.append((int(embed), int(hidden), int(samples)))
        except ValueError:
            raise BenchError(f"--sizes expects EMBED/HIDDEN@K items like 128/256@100, got '{item}'") from None
    return sizes


def import_reference(path: Path):
    """The reference's ``VAE``, ``LSTMEncoder`` and ``LSTMDecoder`` from a checkout at ``path``."""
    if not (path / "modules" / "vae.py").is_file():
        raise BenchError(f"--reference {path}: no modules/vae.py there; pass the root of a checkout of "
                         "jxhe/vae-lagging-encoder (git clone https://github.com/jxhe/vae-lagging-encoder)")
    sys.path.insert(0, str(path))
    import warnings
    warnings.filterwarnings("ignore", message=".*reduce.*")  # its CrossEntropyLoss(reduce=False)
    from modules import VAE, LSTMDecoder, LSTMEncoder
    return VAE, LSTMEncoder, LSTMDecoder


class ReferenceSide:
    """He et al.'s model and update as their ``text.py`` builds and runs them."""

    def __init__(self, classes, embed: int, hidden: int, vocab_size: int, device: torch.device):
        VAE, LSTMEncoder, LSTMDecoder = classes
        args = SimpleNamespace(ni=embed, enc_nh=hidden, dec_nh=hidden, nz=LATENT, dec_dropout_in=0.5,
                               dec_dropout_out=0.5, device=device)
        init = lambda scale: (lambda tensor: torch.nn.init.uniform_(tensor, -scale, scale))  # noqa: E731
        vocab = {f"w{i}": i for i in range(vocab_size)}
        self.model = VAE(LSTMEncoder(args, vocab_size, init(0.01), init(0.1)),
                         LSTMDecoder(args, vocab, init(0.01), init(0.1)), args).to(device)
        self.encoder_optimizer = torch.optim.SGD(self.model.encoder.parameters(), lr=1.0)
        self.decoder_optimizer = torch.optim.SGD(self.model.decoder.parameters(), lr=1.0)

    def train_step(self, batch: torch.Tensor) -> int:
        self.model.train()
        self.encoder_optimizer.zero_grad()
        self.decoder_optimizer.zero_grad()
        loss, loss_rc, loss_kl = self.model.loss(batch, 1.0, nsamples=1)
        loss.mean(dim=-1).backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        self.encoder_optimizer.step()
        self.decoder_optimizer.step()
        loss_rc.sum().item(), loss_kl.sum().item()  # text.py reads both every batch
        return batch.size(0) * (batch.size(1) - 1)

    @torch.no_grad()
    def iw_nll(self, x: torch.Tensor, samples: int) -> torch.Tensor:
        self.model.eval()
        return torch.cat([self.model.nll_iw(x[i:i + 1], nsamples=samples, ns=min(REFERENCE_CHUNK, samples))
                          for i in range(x.size(0))])


def timed(device, function) -> float:
    synchronize(device)
    started = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - started


def measure_size(classes, embed, hidden, samples, args, device) -> dict:
    overrides = {"model": {"embed_dim": embed, "encoder_hidden": hidden, "decoder_hidden": hidden,
                           "latent_dim": LATENT},
                 "data": {"batch_size": args.batch, "max_vocab": args.vocab, "max_length": args.length},
                 "eval": {"iw_samples": samples}}
    ours = build_trainer("vae", "paper", overrides, device, args.steps)
    vocab_size = len(ours.corpus.vocab)
    reference = ReferenceSide(classes, embed, hidden, vocab_size, device)
    batches = [b.to(device) for b in ours.train_data][:args.steps]
    sentences = pad_batch(ours.corpus.splits["test"][:args.iw_sentences]).to(device)

    def our_training():
        for batch in batches:
            ours.step_once(batch)  # in train mode, as the reference's step (dropout on both sides)

    def reference_training():
        for batch in batches:
            reference.train_step(batch)

    def our_iw(bf16: bool = False):
        ours.model.eval()
        with torch.no_grad():
            iw_log_likelihood(ours.model, sentences, samples, max_elements=ours.config.eval.iw_max_elements,
                              bf16=bf16)
        ours.model.train()

    our_training(), reference_training()  # warm-up: allocator, kernels
    our_iw(), reference.iw_nll(sentences, samples)
    if args.bf16:
        our_iw(bf16=True)
    tokens = sum(b.size(0) * (b.size(1) - 1) for b in batches)
    rounds = {"ours_train": [], "ref_train": [], "ours_iw": [], "ref_iw": [], **({"ours_iwbf16": []} if args.bf16 else {})}
    for round_index in range(args.rounds):
        sides = [("ours", our_training, our_iw), ("ref", reference_training,
                                                   lambda: reference.iw_nll(sentences, samples))]
        for name, train, iw in (sides if round_index % 2 == 0 else sides[::-1]):
            rounds[f"{name}_train"].append(tokens / timed(device, train))
            rounds[f"{name}_iw"].append(sentences.size(0) / timed(device, iw))
            if args.bf16 and name == "ours":
                rounds["ours_iwbf16"].append(sentences.size(0) / timed(device, lambda: our_iw(bf16=True)))
    kinds = ("train", "iw", "iwbf16") if args.bf16 else ("train", "iw")
    ratios = {kind: [o / r for o, r in zip(rounds[f"ours_{kind}"], rounds[f"ref_{kind.replace('bf16', '')}"])]
              for kind in kinds}
    return {"embed": embed, "hidden": hidden, "latent": LATENT, "iw_samples": samples, "vocab": vocab_size,
            "rounds": rounds, "ratios": ratios,
            **{f"{key}_median": statistics.median(values) for key, values in rounds.items()}}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python scripts/speed_vs_reference.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python scripts/speed_vs_reference.py --reference ../vae-lagging-encoder\n"
               "  python scripts/speed_vs_reference.py --reference REF --sizes 512/1024@500 --rounds 3\n")
    parser.add_argument("--reference", type=Path, required=True, metavar="DIR",
                        help="your checkout of jxhe/vae-lagging-encoder")
    parser.add_argument("--sizes", default="128/256@100,512/1024@500", metavar="E/H@K,...",
                        help="embedding/hidden widths and IW samples per size (default 128/256@100,512/1024@500)")
    parser.add_argument("--vocab", type=int, default=20000, help="vocabulary size (default 20000, Yahoo's)")
    parser.add_argument("--length", type=int, default=80, help="words per sentence (default 80)")
    parser.add_argument("--batch", type=int, default=32, help="training batch (default 32)")
    parser.add_argument("--steps", type=int, default=4, help="training steps per round (default 4)")
    parser.add_argument("--iw-sentences", type=int, default=2, metavar="N", help="sentences per IW round (default 2)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds (default 4)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--device", default="cpu", metavar="DEV", help="cpu (default), cuda or auto")
    parser.add_argument("--bf16", action="store_true",
                        help="also time this project's IW evaluation with eval.iw_bf16 (against the same reference)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every round's numbers here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if min(args.steps, args.iw_sentences, args.rounds, args.threads) < 1:
        raise BenchError("--steps, --iw-sentences, --rounds and --threads must be at least 1")
    sizes = parse_sizes(args.sizes)
    classes = import_reference(args.reference.expanduser().resolve())
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    results = []
    for embed, hidden, samples in sizes:
        torch.manual_seed(0)
        results.append(measure_size(classes, embed, hidden, samples, args, device))
    span = lambda values: f"[{min(values):.2f}, {max(values):.2f}]"  # noqa: E731
    rows = [[f"{r['embed']}/{r['hidden']}/{r['latent']}", r["iw_samples"],
             f"{r['ours_train_median']:,.0f}", f"{r['ref_train_median']:,.0f}",
             f"{r['ours_train_median'] / r['ref_train_median']:.2f} {span(r['ratios']['train'])}",
             f"{r['ours_iw_median']:,.3f}", f"{r['ref_iw_median']:,.3f}",
             f"{r['ours_iw_median'] / r['ref_iw_median']:.2f} {span(r['ratios']['iw'])}"]
            + ([f"{r['ours_iwbf16_median'] / r['ref_iw_median']:.2f} {span(r['ratios']['iwbf16'])}"] if args.bf16 else [])
            for r in results]
    print(f"device {device}, {torch.get_num_threads()} threads, vocabulary {args.vocab}, {args.length} words, "
          f"batch {args.batch}, {args.steps} steps and {args.iw_sentences} IW sentences per round, "
          f"{args.rounds} rounds; medians over rounds, ratio = this project / reference [range over rounds]")
    print(tabulate(rows, headers=["size (E/H/Z)", "K", "train tok/s ours", "ref", "ratio", "IW sent/s ours", "ref",
                                  "ratio"] + (["IW bf16 ratio"] if args.bf16 else []), disable_numparse=True))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": str(device), "threads": torch.get_num_threads(),
                                         "torch": torch.__version__, "settings": vars(args) | {
                                             "reference": str(args.reference), "json": str(args.json)},
                                         "sizes": results}, indent=1))
    return 0


if __name__ == "__main__":
    run_cli(main)
