"""Free bits: Li et al. 2019 (per sentence and dimension), Kingma et al. 2016 (batch mean), or
Bosc & Vincent 2020 (on a sentence's total KL)."""

from dataclasses import dataclass
from typing import Literal

import torch

from bench.core.method import Method, register_method
from bench.core.objectives import FREE_BITS_VARIANTS


@dataclass(frozen=True)
class FreeBitsSettings:
    target: float = 8.0  # nats per sentence, target / latent_dim per dimension (Li et al. 2019: 8)
    # li: mask per sentence and dimension (Li et al. code, --fb 2); kingma: on the batch-mean KL per
    # dimension; sentence: mask on the sentence's total KL, target in nats (Bosc & Vincent, --fb 1)
    variant: Literal["li", "kingma", "sentence"] = "li"

    def __post_init__(self):
        if self.target < 0:
            raise ValueError("target must be >= 0 nats")


@register_method("free_bits")
class FreeBits(Method):
    """Free bits: a dimension's KL counts only above target/latent_dim (variant li: per sentence; kingma: batch
    mean), or a sentence's KL only above target (variant sentence)."""

    settings_class = FreeBitsSettings

    def kl_penalty(self, kl_per_dim: torch.Tensor) -> torch.Tensor:
        return FREE_BITS_VARIANTS[self.settings.variant](kl_per_dim, self.settings.target)
