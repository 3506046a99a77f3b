"""Free bits (Kingma et al. 2016), whole-KL and per-dimension (Li et al. 2019) variants."""

from dataclasses import dataclass

import torch

from bench.method import Method, register_method


@dataclass(frozen=True)
class FreeBitsSettings:
    target: float = 8.0  # nats per sentence below which KL costs nothing (Li et al. 2019 code: target_kl 8)
    per_dimension: bool = True  # floor target/latent_dim on each dimension instead of on the total

    def __post_init__(self):
        if self.target < 0:
            raise ValueError("target must be >= 0 nats")


@register_method("free_bits")
class FreeBits(Method):
    """Free bits: KL counts only above a floor (per dimension: target/latent_dim each; else on the total).

    As in the reference code of Li et al. 2019 (bohanli/vae-pretraining-encoder), the floor
    is checked on the batch average: a dimension (or the total) whose mean KL over the
    batch is below the floor is dropped from the loss, so it gets no KL gradient at all.
    """

    settings_class = FreeBitsSettings

    def kl_penalty(self, kl_per_dim: torch.Tensor) -> torch.Tensor:
        if self.settings.per_dimension:
            floor = self.settings.target / kl_per_dim.size(1)
            keep = (kl_per_dim.mean(dim=0) > floor).to(kl_per_dim.dtype)  # [latent_dim]
            return (kl_per_dim * keep).sum(dim=1)
        kl = kl_per_dim.sum(dim=1)
        return kl * (kl.mean() > self.settings.target).to(kl.dtype)
