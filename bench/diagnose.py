"""The lagging-encoder diagnostic of He et al. 2019 (Section 3, Figure 2).

On the built-in synthetic data a model with a one-dimensional latent has a true posterior
p(z|x) proportional to p(x|z) p(z) that can be integrated numerically. Plotting, for a
fixed sample of sentences, the model's true posterior mean E_p[z|x] against the encoder's
mean E_q[z|x] at several points of training shows whether the encoder lags behind the
true posterior (points on the x-axis: the collapsed state) or tracks it (points on the
diagonal). ``python -m bench.diagnose lagging --methods vae,aggressive,pooling``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from bench import records
from bench.config import build_run_config, parse_overrides
from bench.data import load_corpus, pad_batch
from bench.errors import BenchError, run_cli
from bench.plots import pyplot, save
from bench.method import build_method
from bench.train import Trainer, resolve_device

GRID_LIMIT = 6.0  # integrate z over [-6, 6]: the N(0, 1) prior puts < 2e-9 mass outside
GRID_POINTS = 241


@torch.no_grad()
def true_posterior_mean(model, x: torch.Tensor, limit: float = GRID_LIMIT, points: int = GRID_POINTS,
                        max_elements: int = 50_000_000) -> torch.Tensor:
    """E_p[z|x] for a model with a one-dimensional latent, by quadrature on a uniform grid:

        E[z|x] = sum_g z_g p(x|z_g) N(z_g; 0, 1) / sum_g p(x|z_g) N(z_g; 0, 1)

    (the grid spacing cancels). Works with any model exposing ``log_px_given_z``; sentences
    are scored in chunks so the decoder's logits stay below ``max_elements``. Returns [B].
    """
    grid = torch.linspace(-limit, limit, points, device=x.device, dtype=torch.float32)
    per_sentence = points * x.size(1) * getattr(model, "vocab_size", 1)
    chunk = max(1, max_elements // per_sentence)
    means = []
    for start in range(0, x.size(0), chunk):
        part = x[start: start + chunk]
        z = grid.view(1, points, 1).expand(part.size(0), points, 1)
        log_joint = model.log_px_given_z(part, z) - 0.5 * grid.pow(2)  # [b, G], up to a constant
        weights = torch.softmax(log_joint.double(), dim=1)
        means.append((weights * grid.double()).sum(dim=1).to(torch.float32))
    return torch.cat(means)


@torch.no_grad()
def posterior_means(model, x: torch.Tensor) -> tuple[list[float], list[float]]:
    """(true means, encoder means) for a batch, with the model in evaluation mode."""
    was_training = model.training
    model.eval()
    true = true_posterior_mean(model, x)
    encoder, _ = model.encode(x)
    model.train(was_training)
    return true.tolist(), encoder[:, 0].tolist()


def lagging(methods: list[str], profile: str, overrides: dict, snapshots: int, sample: int, out: Path,
            device: str, seed: int, log=print) -> dict:
    """Train each method on the synthetic data with a 1-D latent; snapshot posterior means."""
    overrides = {**overrides, "model": {**overrides.get("model", {}), "latent_dim": 1}}
    traces = {}
    for spec in methods:
        config = build_run_config(spec, "synthetic", profile, seed, overrides)
        corpus = load_corpus("synthetic", config.data)
        trainer = Trainer(config, build_method(spec, config.methods), corpus, resolve_device(device),
                          log=lambda message: None)
        if not trainer.method.uses_latent:
            raise BenchError(f"method '{spec}' has no latent variable; the diagnostic needs one")
        x = pad_batch(corpus.splits["valid"][:sample]).to(trainer.device)
        total = config.train.max_epochs * len(trainer.train_data)
        marks = sorted({max(1, round(total * k / (snapshots - 1))) for k in range(1, snapshots)})
        frames = [{"step": 0, **dict(zip(("true", "encoder"), posterior_means(trainer.model, x)))}]

        def snapshot(t: Trainer) -> None:
            if t.step in marks:
                frames.append({"step": t.step, **dict(zip(("true", "encoder"), posterior_means(t.model, x)))})

        trainer.fit(on_step=snapshot)
        traces[spec] = frames
        log(f"{spec}: {len(frames)} snapshots over {trainer.step} steps")
    out.mkdir(parents=True, exist_ok=True)
    records.write_json_atomic(out / "lagging.json", {"profile": profile, "sample": sample, "traces": traces})
    plot_lagging(traces, out / "lagging")
    return traces


def plot_lagging(traces: dict, stem: Path) -> None:
    """A panel per method (rows) and snapshot (columns): encoder mean against true mean."""
    plt = pyplot()
    columns = max(len(frames) for frames in traces.values())
    figure, axes = plt.subplots(len(traces), columns, figsize=(2.3 * columns, 2.4 * len(traces)), squeeze=False,
                                sharex=True, sharey=True)
    values = [v for frames in traces.values() for f in frames for v in (*f["true"], *f["encoder"])]
    limit = max(0.05, min(4.0, 1.1 * max(abs(v) for v in values)))  # zoom in on a collapsed cloud
    for row, (spec, frames) in enumerate(traces.items()):
        for column in range(columns):
            axis = axes[row][column]
            if column >= len(frames):
                axis.axis("off")
                continue
            frame = frames[column]
            axis.plot([-limit, limit], [-limit, limit], color="0.7", linewidth=0.8, zorder=0)
            axis.scatter(frame["true"], frame["encoder"], s=4, alpha=0.5, color="C0")
            axis.set_xlim(-limit, limit)
            axis.set_ylim(-limit, limit)
            if row == 0:
                axis.set_title(f"step {frame['step']}", fontsize=9)
            if column == 0:
                axis.set_ylabel(f"{spec}\nencoder mean E_q[z|x]", fontsize=9)
            if row == len(traces) - 1:
                axis.set_xlabel("true mean E_p[z|x]", fontsize=9)
    figure.suptitle("Posterior mean space on synthetic data (He et al. 2019, Fig. 2): "
                    "on the diagonal = encoder matches the model's posterior", fontsize=10)
    save(figure, stem)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.diagnose", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="example:\n  python -m bench.diagnose lagging --methods vae,aggressive,pooling\n")
    commands = parser.add_subparsers(dest="command", required=True)
    lag = commands.add_parser("lagging", help="posterior mean space on the synthetic data")
    lag.add_argument("--methods", default="vae,aggressive,pooling", metavar="A,B")
    lag.add_argument("--profile", default="cpu", metavar="NAME")
    lag.add_argument("--set", action="append", default=[], dest="overrides", metavar="SECTION.KEY=VALUE")
    lag.add_argument("--snapshots", type=int, default=5, metavar="N", help="panels per method (default 5)")
    lag.add_argument("--sample", type=int, default=500, metavar="N", help="validation sentences plotted")
    lag.add_argument("--seed", type=int, default=0)
    lag.add_argument("--device", default="auto")
    lag.add_argument("--out", type=Path, default=records.DEFAULT_RESULTS / "figures", metavar="DIR")
    args = parser.parse_args(argv)
    if args.snapshots < 2:
        raise BenchError("--snapshots must be at least 2")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    lagging(methods, args.profile, parse_overrides(args.overrides), args.snapshots, args.sample, args.out,
            args.device, args.seed, log=lambda message: print(message, file=sys.stderr))
    print(f"figure: {args.out / 'lagging.png'} (and .pdf); data: {args.out / 'lagging.json'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
