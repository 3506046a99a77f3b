"""BN-VAE (Zhu et al. 2020, ACL): batch normalisation with a fixed scale on the posterior mean."""

from dataclasses import dataclass

import torch
from torch import nn

from bench.method import Method, register_method


@dataclass(frozen=True)
class BNSettings:
    gamma: float = 0.6  # fixed BN scale; E[KL] >= latent_dim * gamma^2 / 2 (Zhu et al. 2020, Eq. 9)

    def __post_init__(self):
        if self.gamma <= 0:
            raise ValueError("gamma must be positive")


class FixedScaleBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d whose scale is a constant gamma (not learned) and bias is learned from 0."""

    def __init__(self, num_features: int, gamma: float):
        super().__init__(num_features)
        self.weight.requires_grad_(False)
        with torch.no_grad():
            self.weight.fill_(gamma)
            self.bias.zero_()


@register_method("bn_vae")
class BNVAE(Method):
    """BN-VAE: batch-normalised posterior mean with fixed scale gamma keeps the expected KL above a floor."""

    settings_class = BNSettings

    def posterior_mean_layer(self, latent_dim: int) -> nn.Module:
        return FixedScaleBatchNorm(latent_dim, self.settings.gamma)
