"""Spread of the host-speed probe on one host: ``python scripts/host_speed_spread.py [N]``.

Runs :func:`bench.core.environment.host_speed` N times (default 8) on one CPU thread after a
warm-up call, as a run does after training, and prints the values and max / min. The
tolerance ``bench.core.results.HOST_SPEED_TOLERANCE`` must lie above this spread (run it also
beside other work on the same core, e.g. ``taskset -c 0`` next to a training run there) and
below the speed ratio between hosts that should not be timed alike.
"""

import sys

import torch

from bench.core.environment import host_speed


def main() -> None:
    probes = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    torch.set_num_threads(1)
    device = torch.device("cpu")
    host_speed(device)  # the first LSTM step of a process is slow
    speeds = [host_speed(device) for _ in range(probes)]
    print("tokens per CPU-second:", ", ".join(f"{speed:,.0f}" for speed in speeds))
    print(f"max / min = {max(speeds) / min(speeds):.2f} over {probes} probes ({torch.backends.cpu.get_cpu_capability()})")


if __name__ == "__main__":
    main()
