"""Cyclical KL annealing (Fu et al. 2019, NAACL, Eq. 6 with a linear ramp)."""

from dataclasses import dataclass

from bench.method import Method, register_method
from methods.kl_anneal import linear_ramp


@dataclass(frozen=True)
class CyclicalSettings:
    cycle_epochs: float = 10.0  # length of one cycle
    ramp_fraction: float = 0.5  # R in Fu et al.: share of a cycle spent ramping up (then held at 1)
    kl_start: float = 0.0  # weight at the start of every cycle (Fu et al.: 0)

    def __post_init__(self):
        if self.cycle_epochs <= 0 or not 0.0 < self.ramp_fraction <= 1.0 or not 0.0 <= self.kl_start <= 1.0:
            raise ValueError("cycle_epochs > 0, 0 < ramp_fraction <= 1 and 0 <= kl_start <= 1 are required")


@register_method("cyclical")
class Cyclical(Method):
    """Cyclical annealing: the KL ramp restarts every cycle, rising over ramp_fraction of it, then held at 1."""

    settings_class = CyclicalSettings

    def kl_weight(self, step: int, steps_per_epoch: int) -> float:
        cycle_steps = max(1, round(self.settings.cycle_epochs * steps_per_epoch))
        step_in_cycle = step % cycle_steps
        ramp_epochs = self.settings.ramp_fraction * cycle_steps / steps_per_epoch
        return linear_ramp(step_in_cycle, steps_per_epoch, self.settings.kl_start, ramp_epochs)
