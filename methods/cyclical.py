"""Cyclical KL annealing (Fu et al. 2019, NAACL, Eq. 6 with a linear ramp)."""

from dataclasses import dataclass

from bench.core.method import Method, TrainingClock, register_method
from bench.core.objectives import cyclical_weight


@dataclass(frozen=True)
class CyclicalSettings:
    cycles: int = 4  # M in Fu et al.: cycles over the whole run (their text experiments: 4)
    ramp_fraction: float = 0.5  # R in Fu et al.: share of a cycle spent rising from 0 to 1 (then held at 1)

    def __post_init__(self):
        if self.cycles < 1 or not 0.0 < self.ramp_fraction <= 1.0:
            raise ValueError("cycles >= 1 and 0 < ramp_fraction <= 1 are required")


@register_method("cyclical")
class Cyclical(Method):
    """Cyclical annealing: M cycles over the planned run, each a ramp 0 -> 1 over R of it, then held at 1."""

    settings_class = CyclicalSettings

    def kl_weight(self, clock: TrainingClock) -> float:
        return cyclical_weight(clock.step, clock.total_steps, self.settings.cycles, self.settings.ramp_fraction)
