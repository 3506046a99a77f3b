"""Train and evaluate one run: ``python -m bench train --method vae --dataset yahoo``.

The command-line front of :func:`bench.core.lifecycle.run` (record, checkpoints, resume), which
drives :class:`bench.core.loop.Trainer` (epochs, schedule, model selection).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.core import records
from bench.core.config import SECTIONS, available_profiles, build_run_config, parse_overrides
from bench.core.data import SYNTHETIC
from bench.core.errors import BenchError, printer, run_cli
from bench.core.lifecycle import run
from bench.core.method import available_methods, build_method, method_class
from bench.core.metric_specs import summary_line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench train", description="Train and evaluate one method on one dataset; "
        "writes one self-describing record (metrics, timings, curves, config, hardware).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  python -m bench train --method vae --dataset synthetic --profile smoke\n"
               "  python -m bench train --method vae --dataset yahoo_resplit --profile cpu_text --data-dir ../shared/data\n"
               "  python -m bench train --method pooling+kl_anneal --dataset ptb --set model.latent_dim=16\n")
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
    other.add_argument("--tensorboard", metavar="DIR", type=Path,
                       help="stream each epoch's curves to TensorBoard under DIR (needs tensorboardX; "
                            "then: tensorboard --logdir DIR)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_methods:
        for name in available_methods():
            doc = (method_class(name).__doc__ or "").strip().splitlines()
            print(f"{name:14s} {doc[0] if doc else ''}")
        return 0
    if not args.method:
        raise BenchError("--method is required (see --list-methods)")
    overrides = parse_overrides(args.overrides)
    config = build_run_config(args.method, args.dataset, args.profile, args.seed, overrides)
    parts = args.method.split("+")
    for section in overrides:
        if section not in SECTIONS and section not in parts:  # would be ignored: say so instead
            build_method(args.method, {section: {}})  # an unknown section: its own one-line error
            raise BenchError(f"--set {section}.*: the run's method '{args.method}' has no '{section}' part, so "
                             f"the setting would be ignored; use --method {section} (or join it with '+')")
    log = (lambda message: None) if args.quiet else printer()  # a closed pipe never stops the run
    on_epoch = None
    if args.tensorboard is not None:
        from bench.core.tensorboard import epoch_writer
        on_epoch = epoch_writer(args.tensorboard / config.profile / config.dataset / args.method / f"seed{config.seed}")
    record = run(config, args.out, args.data_dir, args.device, progress=None if not args.quiet else False,
                 log=log, resume=not args.restart, on_epoch=on_epoch)
    test = record["metrics"]["test"]
    print(f"{record['method']} {record['dataset']} seed {record['seed']}: {summary_line(test)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
