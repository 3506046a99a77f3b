"""KL schedules and KL penalties shared by several methods (the core knows no method by name).

Each function is the formula of a paper, written once; methods choose among them.
"""

from __future__ import annotations

import math

import torch


def linear_ramp(step: int, steps_per_epoch: int, start: float, ramp_epochs: float) -> float:
    """KL annealing weight (Bowman et al. 2016 as coded by He et al. 2019, ``text.py``):

        beta_t = min(1, start + (t + 1) (1 - start) / (ramp_epochs * steps_per_epoch)),  t 0-based

    The reference adds the increment before each iteration, hence ``t + 1``.
    """
    rate = (1.0 - start) / (ramp_epochs * steps_per_epoch)
    return min(1.0, start + (step + 1) * rate)


def cyclical_weight(step: int, total_steps: int, cycles: int, ramp_fraction: float) -> float:
    """Cyclical annealing (Fu et al. 2019, Eq. 6 with a linear f), ``t`` = step + 1 in 1..T:

        tau = mod(t - 1, ceil(T / M)) / (T / M),   beta_t = tau / R if tau <= R else 1
    """
    cycle = total_steps / cycles
    tau = (step % math.ceil(cycle)) / cycle
    return min(1.0, tau / ramp_fraction)


def free_bits_per_sentence(kl_per_dim: torch.Tensor, target: float) -> torch.Tensor:
    """Free bits as Li et al. 2019 code it (``--fb 2``): a mask per sentence and dimension,

        penalty(x) = sum_d 1[KL_d(x) > target / nz] * KL_d(x)

    so a dimension whose KL for this sentence is below target / nz gets no KL gradient.
    """
    floor = target / kl_per_dim.size(1)
    return (kl_per_dim * (kl_per_dim > floor).to(kl_per_dim.dtype)).sum(dim=1)


def free_bits_batch_mean(kl_per_dim: torch.Tensor, target: float) -> torch.Tensor:
    """Free bits as Kingma et al. 2016 define them, one group per dimension:

        penalty = sum_d max(target / nz, E_batch[KL_d])

    written per sentence as  sum_d 1[E_batch KL_d > target / nz] * KL_d(x)  (equal value
    when averaged over the batch up to the constant floor, identical gradient).
    """
    floor = target / kl_per_dim.size(1)
    keep = (kl_per_dim.mean(dim=0) > floor).to(kl_per_dim.dtype)
    return (kl_per_dim * keep).sum(dim=1)


def free_bits_sentence_total(kl_per_dim: torch.Tensor, target: float) -> torch.Tensor:
    """Free bits on a sentence's whole KL, as Bosc & Vincent 2020 code it (exps-s2svae,
    ``text_anneal_fb.py --fb 1``): a mask per sentence,

        penalty(x) = 1[sum_d KL_d(x) > target] * sum_d KL_d(x)

    so a sentence whose KL is below ``target`` nats gets no KL gradient (a hinge on the total,
    not on each dimension: the encoder may spend the free nats on any dimensions).
    """
    total = kl_per_dim.sum(dim=1)
    return total * (total > target).to(total.dtype)


FREE_BITS_VARIANTS = {"li": free_bits_per_sentence, "kingma": free_bits_batch_mean,
                      "sentence": free_bits_sentence_total}
