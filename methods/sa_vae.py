"""Semi-amortized VAE (Kim et al. 2018, ICML, Algorithm 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from bench.method import Method, register_method
from bench.model import VaeOutput, gaussian_kl_per_dim
from bench.data import predicted_tokens


@dataclass(frozen=True)
class SAVAESettings:
    svi_steps: int = 10  # refinement steps per batch (He et al. 2019 comparison: 10; Kim et al.: 20)
    svi_lr: float = 1.0  # step size of the refinement (Kim et al.: 1)
    svi_momentum: float = 0.5  # momentum of the refinement (Kim et al.: 0.5)
    svi_max_grad_norm: float = 5.0  # per-sentence gradient clipping in the refinement (Kim et al.: 5)

    def __post_init__(self):
        if self.svi_steps < 0 or self.svi_lr <= 0 or not 0 <= self.svi_momentum < 1 or self.svi_max_grad_norm <= 0:
            raise ValueError("svi_steps >= 0, svi_lr > 0, 0 <= svi_momentum < 1, svi_max_grad_norm > 0")


def negative_elbo(model, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, kl_weight: float = 1.0,
                  kl_penalty: Callable[[torch.Tensor], torch.Tensor] = lambda kl: kl.sum(1)):
    """Per-sentence  -log p(x|z) + kl_weight * kl_penalty(KL per dim)  with one z sample, and its parts."""
    z = model.sample_posterior(mu, logvar, 1)
    reconstruction = -model.log_px_given_z(x, z).squeeze(1)
    kl_per_dim = gaussian_kl_per_dim(mu, logvar)
    return reconstruction + kl_weight * kl_penalty(kl_per_dim), reconstruction, kl_per_dim


def refine(model, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, settings: SAVAESettings,
           kl_weight: float = 1.0, create_graph: bool = False):
    """Stochastic variational inference from the encoder's (mu, logvar): gradient descent on -ELBO.

    lambda_{k+1} = lambda_k - lr * v_{k+1},  v_{k+1} = momentum * v_k + clip(grad_lambda -ELBO(lambda_k)),
    one z sample per step, each sentence's parameters moved by its own ELBO's gradient.
    With ``create_graph`` the steps stay differentiable, so the encoder can be trained
    through them (Kim et al.'s semi-amortized gradient).
    """
    params = [mu, logvar]
    if not create_graph:
        params = [p.detach().requires_grad_(True) for p in params]
    velocity = [torch.zeros_like(p) for p in params]
    for _ in range(settings.svi_steps):
        loss = negative_elbo(model, x, *params, kl_weight)[0].sum()
        grads = torch.autograd.grad(loss, params, create_graph=create_graph)
        norm = torch.cat(grads, dim=1).norm(dim=1, keepdim=True)  # per sentence
        scale = (settings.svi_max_grad_norm / (norm + 1e-6)).clamp(max=1.0)
        velocity = [settings.svi_momentum * v + g * scale for v, g in zip(velocity, grads)]
        params = [p - settings.svi_lr * v for p, v in zip(params, velocity)]
    return params[0], params[1]


@register_method("sa_vae")
class SemiAmortizedVAE(Method):
    """SA-VAE: encoder output refined per sentence by SVI steps; encoder trained through them.

    Per batch (Kim et al. 2018, Algorithm 1): lambda_0 = encoder(x); K SVI steps give
    lambda_K; the decoder is updated with the ELBO at lambda_K (z treated as data), and
    the encoder with d ELBO(lambda_K) / d phi, back-propagated through the K steps
    (exact second-order terms via autograd instead of the paper's finite differences).
    """

    settings_class = SAVAESettings

    def train_step(self, trainer, batch: torch.Tensor) -> dict[str, float]:
        model = trainer.model
        kl_weight, kl_penalty = trainer.kl_weight, trainer.method.kl_penalty  # composed objective
        model.zero_grad(set_to_none=True)
        mu0, logvar0 = model.encode(batch)
        mu, logvar = refine(model, batch, mu0, logvar0, self.settings, kl_weight, create_graph=True)
        # Decoder: ELBO at the refined parameters, with z as fixed data.
        decoder_loss, reconstruction, kl_per_dim = negative_elbo(model, batch, mu.detach(), logvar.detach(),
                                                                 kl_weight, kl_penalty)
        trainer.check_finite(decoder_loss.mean())
        decoder_params = model.decoder_parameters()
        for param, grad in zip(decoder_params, torch.autograd.grad(decoder_loss.mean(), decoder_params)):
            param.grad = grad
        # Encoder: the same objective differentiated through the refinement.
        encoder_loss = negative_elbo(model, batch, mu, logvar, kl_weight, kl_penalty)[0].mean()
        encoder_params = model.encoder_parameters()
        grads = torch.autograd.grad(encoder_loss, encoder_params, allow_unused=True)
        for param, grad in zip(encoder_params, grads):
            param.grad = grad
        trainer.apply_gradients()
        out = VaeOutput(reconstruction, kl_per_dim, mu.detach(), logvar.detach(),
                        predicted_tokens(batch))
        return trainer.step_statistics(decoder_loss.mean(), out, batch)
