"""Encoder pretraining + decoder reset + annealing + free bits (Li et al. 2019, CoNLL)."""

from dataclasses import dataclass
from typing import Any, Literal, Mapping

import torch

from bench.core.method import Method, TrainingClock, register_method
from bench.core.step import StepContext
from bench.core.objectives import FREE_BITS_VARIANTS, linear_ramp


@dataclass(frozen=True)
class PretrainFBSettings:
    pretrain_epochs: int = 10  # autoencoder phase (KL weight 0); Li et al. train the AE to convergence
    kl_start: float = 0.0  # annealing after the reset (Li et al. README: --kl_start 0 --warm_up 10)
    warm_up: float = 10.0
    target: float = 8.0  # free bits, nats per sentence (--target_kl 8)
    variant: Literal["li", "kingma"] = "li"  # li = their --fb 2: mask per sentence and dimension

    def __post_init__(self):
        if self.pretrain_epochs < 1 or not 0.0 <= self.kl_start <= 1.0 or self.warm_up <= 0 or self.target < 0:
            raise ValueError("pretrain_epochs >= 1, 0 <= kl_start <= 1, warm_up > 0 and target >= 0 are required")


@register_method("pretrain_fb")
class PretrainFreeBits(Method):
    """Li et al. 2019: autoencoder pretraining, decoder re-initialised, then KL annealing with free bits.

    Epochs 1..pretrain_epochs train an autoencoder (KL weight 0, i.e. beta = 0, as their
    ``text_beta.py --beta 0``). At the end of that phase the decoder is re-initialised and
    the best-checkpoint bookkeeping restarts; then the KL weight rises from kl_start to 1
    over warm_up epochs and free bits (per sentence and dimension) apply, as their
    ``text_anneal_fb.py --reset_dec --fb 2``.
    """

    settings_class = PretrainFBSettings

    def __init__(self, settings=None):
        super().__init__(settings)
        self.pretraining = True

    def kl_weight(self, clock: TrainingClock) -> float:
        pretrain_steps = self.settings.pretrain_epochs * clock.steps_per_epoch
        if clock.step < pretrain_steps:
            return 0.0
        return linear_ramp(clock.step - pretrain_steps, clock.steps_per_epoch, self.settings.kl_start,
                           self.settings.warm_up)

    def kl_penalty(self, kl_per_dim: torch.Tensor) -> torch.Tensor:
        return FREE_BITS_VARIANTS[self.settings.variant](kl_per_dim, self.settings.target)

    def on_epoch_end(self, context: StepContext, epoch: int, valid: Mapping[str, float]) -> dict[str, Any]:
        row = {"pretraining": self.pretraining}
        if self.pretraining and epoch >= self.settings.pretrain_epochs:
            self.pretraining = False
            context.model.reset_decoder()
            context.restart_model_selection()
            context.log(f"  autoencoder pretraining ends after epoch {epoch}: decoder re-initialised")
        return row

    def state_dict(self) -> dict[str, Any]:
        return {"pretraining": self.pretraining}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.pretraining = state.get("pretraining", True)
