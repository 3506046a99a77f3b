"""beta-VAE with a fixed KL weight (Higgins et al. 2017; rows beta = 0.2-0.8 in He et al. 2019)."""

from dataclasses import dataclass

from bench.core.method import Method, TrainingClock, register_method


@dataclass(frozen=True)
class BetaSettings:
    beta: float = 0.4  # He et al. 2019, Table 1 reports 0.2, 0.4, 0.6 and 0.8

    def __post_init__(self):
        if self.beta < 0:
            raise ValueError("beta must be >= 0")


@register_method("beta_vae")
class BetaVAE(Method):
    """beta-VAE: the KL term weighted by a fixed beta for the whole of training."""

    settings_class = BetaSettings

    def kl_weight(self, clock: TrainingClock) -> float:
        return self.settings.beta
