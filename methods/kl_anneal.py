"""KL annealing (Bowman et al. 2016), as in the reference implementation of He et al. 2019."""

from dataclasses import dataclass

from bench.core.method import Method, TrainingClock, register_method
from bench.core.objectives import linear_ramp


@dataclass(frozen=True)
class KLAnnealSettings:
    kl_start: float = 0.1  # KL weight at the first step (He et al. 2019: 0.1)
    warm_up: float = 10.0  # epochs for the weight to reach 1 (He et al. 2019: 10)

    def __post_init__(self):
        if not 0.0 <= self.kl_start <= 1.0 or self.warm_up <= 0:
            raise ValueError("kl_start must be in [0, 1] and warm_up positive")


@register_method("kl_anneal")
class KLAnneal(Method):
    """KL annealing: weight rises linearly per iteration from kl_start to 1 over warm_up epochs."""

    settings_class = KLAnnealSettings

    def kl_weight(self, clock: TrainingClock) -> float:
        return linear_ramp(clock.step, clock.steps_per_epoch, self.settings.kl_start, self.settings.warm_up)
