"""The lagging-encoder diagnostic of He et al. 2019 (Section 3, Figure 2).

On the built-in synthetic corpus (He et al.'s generator recipe) a model with a
one-dimensional latent has a true posterior p(z|x) proportional to p(x|z) p(z) that can be
integrated numerically. Plotting, for a fixed sample of training sentences, the model's
true posterior mean E_p[z|x] against the encoder's mean E_q[z|x] at several training
iterations shows whether the encoder lags behind the true posterior (points on a
horizontal line: the collapsed state) or tracks it (points on the diagonal). Every panel
also records numbers, so the figure's claim can be checked without looking at it: the
correlation and least-squares slope of encoder mean on true mean, the spread (standard
deviation) of each, and KL and MI on the plotted sentences.
``python -m bench diagnose lagging --methods vae,aggressive,pooling``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from bench.core import files, records
from bench.core.config import build_run_config, parse_overrides
from bench.core.data import load_corpus, pad_batch
from bench.core.errors import BenchError, run_cli
from bench.core.plots import pyplot, save
from bench.core.method import build_method
from bench.core.metrics import kl_to_prior, mean_mi_batch
from bench.core.loop import Trainer, resolve_device

GRID_LIMIT = 20.0  # the reference integrates z over [-20, 20] in steps of 0.1 (toy.py --zmin/--zmax/--dz)
GRID_STEP = 0.1
DEFAULT_ITERATIONS = (0, 200, 2000)  # He et al.'s panels, plus the end of training


@torch.no_grad()
def true_posterior_mean(model, x: torch.Tensor, limit: float = GRID_LIMIT, step: float = GRID_STEP,
                        max_elements: int = 50_000_000) -> torch.Tensor:
    """E_p[z|x] for a model with a one-dimensional latent, by quadrature on a uniform grid:

        E[z|x] = sum_g z_g p(x|z_g) N(z_g; 0, 1) / sum_g p(x|z_g) N(z_g; 0, 1)

    (the grid spacing cancels). Works with any model exposing ``log_px_given_z``; sentences
    are scored in chunks so the decoder's logits stay below ``max_elements``. Returns [B].
    """
    points = int(round(2 * limit / step)) + 1
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


# A correlation is shown only where both means spread more than this across sentences: on a
# flat (collapsed) cloud it is the correlation of numerical noise.
MEANINGFUL_SPREAD = 0.01


def panel_statistics(true: list[float], encoder: list[float]) -> dict[str, float]:
    """Correlation and slope of encoder mean on true mean, and the spread (std) of each.

        slope = Cov(true, encoder) / Var(true),   correlation = Cov / (std_true * std_encoder)

    A flat (collapsed) encoder has spread ~0 and slope ~0; correlation is 0 when either
    spread is 0. On the diagonal: correlation ~1 and slope ~1.
    """
    t, e = torch.tensor(true, dtype=torch.float64), torch.tensor(encoder, dtype=torch.float64)
    t_std, e_std = float(t.std()), float(e.std())
    covariance = float(((t - t.mean()) * (e - e.mean())).sum() / (len(t) - 1))
    return {"correlation": covariance / (t_std * e_std) if t_std > 1e-12 and e_std > 1e-12 else 0.0,
            "slope": covariance / t_std ** 2 if t_std > 1e-12 else 0.0,
            "true_spread": t_std, "encoder_spread": e_std}


@torch.no_grad()
def snapshot(model, x: torch.Tensor, batch_size: int, iteration: int) -> dict:
    """One panel: both means for every sentence, their statistics, and KL and MI on them.

    MI is averaged over chunks of the training batch size, as the reference's ``toy.py``.
    """
    was_training = model.training
    model.eval()
    true = true_posterior_mean(model, x).tolist()
    mu, logvar = model.encode(x)
    mi = mean_mi_batch(zip(mu.split(batch_size), logvar.split(batch_size)))
    model.train(was_training)
    encoder = mu[:, 0].tolist()
    return {"iteration": iteration, "true": true, "encoder": encoder, **panel_statistics(true, encoder),
            "kl": float(kl_to_prior(mu, logvar).mean()), "mi": mi}


def lagging(methods: list[str], profile: str, overrides: dict, iterations: list[int], sample: int, out: Path,
            device: str, seed: int, log=print) -> dict:
    """Train each method on the synthetic data with a 1-D latent; a panel at each iteration and at the end."""
    overrides = {**overrides, "model": {**overrides.get("model", {}), "latent_dim": 1}}
    files.make_output_dir(out)  # a bad --out fails now, not after the training
    traces = {}
    for spec in methods:
        config = build_run_config(spec, "synthetic", profile, seed, overrides)
        corpus = load_corpus("synthetic", config.data)
        trainer = Trainer(config, build_method(spec, config.methods), corpus, resolve_device(device),
                          log=lambda message: None)
        if not trainer.method.uses_latent:
            raise BenchError(f"method '{spec}' has no latent variable; the diagnostic needs one")
        # A fixed random sample of training sentences, the same for every method (as toy.py).
        order = torch.randperm(len(corpus.splits["train"]), generator=torch.Generator().manual_seed(seed))
        x = pad_batch([corpus.splits["train"][i] for i in order[:sample].tolist()]).to(trainer.device)
        batch_size = config.data.batch_size
        frames = [snapshot(trainer.model, x, batch_size, 0)] if 0 in iterations else []

        def take(t: Trainer) -> None:
            if t.step in iterations:
                frames.append(snapshot(t.model, x, batch_size, t.step))

        trainer.fit(on_step=take)
        if not frames or frames[-1]["iteration"] != trainer.step:
            frames.append(snapshot(trainer.model, x, batch_size, trainer.step))
        frames[-1]["end"] = True
        traces[spec] = frames
        log(f"{spec}: " + "; ".join(f"iteration {f['iteration']}: corr {f['correlation']:.2f} slope "
                                     f"{f['slope']:.2f} spread enc {f['encoder_spread']:.3f} true "
                                     f"{f['true_spread']:.3f} KL {f['kl']:.2f} MI {f['mi']:.2f}" for f in frames))
    files.write_json_atomic(out / "lagging.json", {"profile": profile, "sample": sample, "seed": seed,
                                                     "overrides": overrides, "traces": traces})
    plot_lagging(traces, out / "lagging", f"seed {seed}, {sample} training sentences, profile {profile}")
    return traces


def summary_lines(traces: dict) -> list[str]:
    """A Markdown table of every panel's numbers (for the report)."""
    lines = ["| method | iteration | corr(enc, true) | slope | encoder spread | true spread | KL | MI |",
             "|---|---|---|---|---|---|---|---|"]
    for spec, frames in traces.items():
        for f in frames:
            iteration = f"{f['iteration']} (end)" if f.get("end") else str(f["iteration"])
            lines.append(f"| {spec} | {iteration} | {f['correlation']:.2f} | {f['slope']:.2f} | "
                         f"{f['encoder_spread']:.3f} | {f['true_spread']:.3f} | {f['kl']:.2f} | {f['mi']:.2f} |")
    return lines


def plot_lagging(traces: dict, stem: Path, setting: str = "") -> None:
    """A panel per method (rows) and snapshot (columns): encoder mean against true mean."""
    plt = pyplot()
    columns = max(len(frames) for frames in traces.values())
    figure, axes = plt.subplots(len(traces), columns, figsize=(2.3 * columns, 2.4 * len(traces)), squeeze=False,
                                sharex=True, sharey=True)
    values = [v for frames in traces.values() for f in frames for v in (*f["true"], *f["encoder"])]
    limit = max(0.05, min(6.0, 1.1 * max(abs(v) for v in values)))  # zoom in on a collapsed cloud
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
                axis.set_title(f"iteration {frame['iteration']}", fontsize=9)
            both_spread = min(frame["true_spread"], frame["encoder_spread"]) > MEANINGFUL_SPREAD
            r = f"r={frame['correlation']:.2f}" if both_spread else "r: -- (a flat cloud)"
            axis.text(0.03, 0.97, f"{r}\nKL={frame['kl']:.2f}", transform=axis.transAxes, fontsize=7, va="top")
            if column == 0:
                axis.set_ylabel(f"{spec}\nencoder mean E_q[z|x]", fontsize=9)
            if row == len(traces) - 1:
                axis.set_xlabel("true mean E_p[z|x]", fontsize=9)
    figure.suptitle("Posterior mean space on synthetic data (He et al. 2019, Fig. 2): on the diagonal = encoder "
                    f"matches the model's posterior\n{setting + '; ' if setting else ''}r only where both means "
                    f"spread more than {MEANINGFUL_SPREAD}", fontsize=10)
    save(figure, stem)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench diagnose", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="example:\n  python -m bench diagnose lagging --methods vae,aggressive,pooling "
                                            "--set train.max_epochs=5\n")
    commands = parser.add_subparsers(dest="command", required=True)
    lag = commands.add_parser("lagging", help="posterior mean space on the synthetic data")
    lag.add_argument("--methods", default="vae,aggressive,pooling", metavar="A,B")
    lag.add_argument("--profile", default="toy", metavar="NAME", help="settings profile (default: toy, He et al.'s)")
    lag.add_argument("--set", action="append", default=[], dest="overrides", metavar="SECTION.KEY=VALUE")
    lag.add_argument("--iterations", default=",".join(map(str, DEFAULT_ITERATIONS)), metavar="A,B",
                     help="training iterations with a panel, plus the end (default: 0,200,2000)")
    lag.add_argument("--sample", type=int, default=500, metavar="N", help="training sentences plotted (default 500)")
    lag.add_argument("--seed", type=int, default=0)
    lag.add_argument("--device", default="auto")
    lag.add_argument("--out", type=Path, default=records.DEFAULT_RESULTS / "figures", metavar="DIR")
    lag.add_argument("--force", action="store_true",
                     help="replace an existing lagging figure made with another profile or fewer sentences")
    args = parser.parse_args(argv)
    try:
        iterations = sorted({int(i) for i in args.iterations.split(",") if i.strip()})
    except ValueError:
        raise BenchError(f"--iterations expects integers separated by commas, got '{args.iterations}'") from None
    if args.sample < 2:
        raise BenchError("--sample must be at least 2")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    existing = files.json_facts(args.out / "lagging.json")  # never replaced by a smaller or other-profile one
    if not args.force and existing and (existing.get("profile") != args.profile or existing.get("sample", 0) > args.sample):
        raise BenchError(f"{args.out / 'lagging.json'} holds the {existing.get('profile')} profile's figure "
                         f"({existing.get('sample')} sentences); this would replace it with the {args.profile} profile's "
                         f"({args.sample}): pass --force to replace it, or --out DIR to write elsewhere")
    traces = lagging(methods, args.profile, parse_overrides(args.overrides), iterations, args.sample, args.out,
                     args.device, args.seed, log=lambda message: print(message, file=sys.stderr))
    print("\n".join(summary_lines(traces)))
    print(f"figure: {args.out / 'lagging.png'} (and .pdf); data: {args.out / 'lagging.json'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
