"""BN-VAE (Zhu et al. 2020, ACL): batch normalisation with a fixed scale on the posterior mean."""

from dataclasses import dataclass

import torch
from torch import nn

from bench.core.method import Method, register_method


@dataclass(frozen=True)
class BNSettings:
    gamma: float = 0.6  # fixed BN scale; E[KL] >= latent_dim * gamma^2 / 2 (Zhu et al. 2020, Eq. 9)

    def __post_init__(self):
        if self.gamma <= 0:
            raise ValueError("gamma must be positive")


class FixedScaleBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d whose scale is a constant gamma (not learned) and bias is learned from 0.

    A training batch of one sentence has no batch statistics: it is normalised with the
    running statistics instead (Zhu et al.'s code skips such batches).
    """

    def __init__(self, num_features: int, gamma: float):
        super().__init__(num_features)
        self.weight.requires_grad_(False)
        with torch.no_grad():
            self.weight.fill_(gamma)
            self.bias.zero_()

    def forward(self, mu: torch.Tensor) -> torch.Tensor:
        if self.training and mu.size(0) == 1:
            return nn.functional.batch_norm(mu, self.running_mean, self.running_var, self.weight, self.bias,
                                            training=False, eps=self.eps)
        return super().forward(mu)


@register_method("bn_vae")
class BNVAE(Method):
    """BN-VAE: batch-normalised posterior mean with fixed scale gamma keeps the expected KL above a floor.

    The encoder keeps PyTorch's default initialisation, as in Zhu et al.'s code: with the
    reference U(-0.01, 0.01) initialisation the variance of mu across sentences (~1e-9 to
    1e-7) is far below BatchNorm's eps = 1e-5, so the normalised means would hardly vary
    and the KL floor the method relies on would not hold.
    """

    settings_class = BNSettings

    def posterior_mean_layer(self, latent_dim: int) -> nn.Module:
        return FixedScaleBatchNorm(latent_dim, self.settings.gamma)

    def initialise(self, model: nn.Module) -> None:
        model.reset_encoder_to_pytorch_default()
