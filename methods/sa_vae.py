"""Semi-amortized VAE (Kim et al. 2018, ICML, Algorithm 1), as in harvardnlp/sa-vae."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from bench.core.method import Method, register_method
from bench.core.model import without_cudnn
from bench.core.step import StepContext, StepStatistics


@dataclass(frozen=True)
class SAVAESettings:
    svi_steps: int = 20  # refinement steps, in training and at test time (Kim et al. code: --svi_steps 20)
    svi_lr: float = 1.0  # step size for mu and logvar (--svi_lr1, --svi_lr2: 1)
    svi_momentum: float = 0.5  # (--momentum 0.5)
    svi_max_grad_norm: float = 5.0  # each of grad_mu, grad_logvar [B, nz] clipped as a whole (--svi_max_grad_norm 5)

    def __post_init__(self):
        if self.svi_steps < 0 or self.svi_lr <= 0 or not 0 <= self.svi_momentum < 1 or self.svi_max_grad_norm <= 0:
            raise ValueError("svi_steps >= 0, svi_lr > 0, 0 <= svi_momentum < 1, svi_max_grad_norm > 0")


def clip_whole(gradient: torch.Tensor, max_norm: float) -> torch.Tensor:
    """g * min(1, max_norm / (||g|| + 1e-6)) with the norm over the whole tensor (Kim et al.'s clip_grad_norm)."""
    return gradient * (max_norm / (gradient.norm() + 1e-6)).clamp(max=1.0)


def refine(model, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, settings: SAVAESettings,
           objective: Callable, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Stochastic variational inference from the encoder's (mu, logvar), Kim et al.'s ``forward_mom``:

        v_{k+1} = momentum * v_k - clip(grad_lambda L(lambda_k)),   lambda_{k+1} = lambda_k + lr * v_{k+1}

    with L = the batch *mean* of the per-sentence objective ``objective(model, x, mu,
    logvar) -> [B]`` (one z sample per step), so the step size does not depend on the
    batch size, and grad_mu and grad_logvar each clipped as a whole [B, nz] tensor.
    With ``create_graph`` the steps stay differentiable: the encoder *and* the decoder
    then receive the gradient through the whole trajectory (Kim et al. obtain the same
    terms by finite-difference Hessian-vector products).
    """
    params = [mu, logvar]
    if not create_graph:
        params = [p.detach().requires_grad_(True) for p in params]
    velocity = [torch.zeros_like(p) for p in params]
    for _ in range(settings.svi_steps):
        loss = objective(model, x, *params).mean()
        grads = torch.autograd.grad(loss, params, create_graph=create_graph)
        velocity = [settings.svi_momentum * v - clip_whole(g, settings.svi_max_grad_norm)
                    for v, g in zip(velocity, grads)]
        params = [p + settings.svi_lr * v for p, v in zip(params, velocity)]
    return params[0], params[1]


@register_method("sa_vae")
class SemiAmortizedVAE(Method):
    """SA-VAE: encoder output refined per batch by SVI steps; the model is trained through them.

    Per batch (Kim et al. 2018, Algorithm 1): lambda_0 = encoder(x); K SVI steps on the
    training objective (the same KL weight and penalty as the rest of the step) give
    lambda_K; the loss is the objective at lambda_K, back-propagated through the K steps
    into encoder and decoder (exact second-order terms via autograd instead of the
    paper's finite differences). At test time the same K steps refine q(z|x) with KL
    weight 1; the record holds both the amortized and the refined metrics.
    """

    settings_class = SAVAESettings
    differentiates_twice = True  # back-propagates through the SVI steps

    def train_step(self, context: StepContext, batch: torch.Tensor) -> StepStatistics:
        with without_cudnn():  # the step back-propagates through gradients of the LSTMs
            mu0, logvar0 = context.encode(batch)
            mu, logvar = refine(context.model, batch, mu0, logvar0, self.settings, context.sentence_objective,
                                create_graph=True)
            return context.step_on(*context.objective(batch, mu, logvar), batch)

    def refine_posterior(self, model, x, mu, logvar):
        with torch.enable_grad(), without_cudnn():  # a backward in eval mode (test time)
            mu, logvar = refine(model, x, mu, logvar, self.settings, _negative_elbo)
        return mu.detach(), logvar.detach()


def _negative_elbo(model, x, mu, logvar) -> torch.Tensor:
    """-ELBO per sentence with one z sample and KL weight 1 (Kim et al.'s test-time objective)."""
    out = model.elbo_terms(x, mu, logvar)
    return out.reconstruction_nll + out.kl
