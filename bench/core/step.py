"""The step context: everything a method's training hooks may use, and nothing else.

The training loop (:mod:`bench.core.loop`) hands a :class:`StepContext` to a method's
``train_step`` and ``on_epoch_end`` hooks. It holds the model and the two SGD optimisers
(encoder and decoder apart, so that a method can update one side only) and offers:

- the one objective, per sentence and as a batch mean, at the encoder's posterior or at
  given posterior parameters (SA-VAE's refined ones):
  ``-log p(x|z) + kl_weight(clock) * kl_penalty(KL per dimension)``;
- updates: :meth:`joint_step`, :meth:`encoder_step`, :meth:`decoder_step`, and
  :meth:`step_on` for a loss a method computed itself from that objective;
- a random training batch, the validation MI at the training batch size, a restart of
  best-checkpoint selection (a method starting a new phase), and logging.

Step statistics stay tensors on the model's device (sums over the batch), so a step
never waits for the device; the loop reads them once per epoch.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from bench.core.errors import BenchError
from bench.core.method import Method, TrainingClock
from bench.core.model import SequenceVAE, VaeOutput

StepStatistics = dict[str, torch.Tensor | int]


class TrainingDiverged(BenchError):
    """The loss became NaN or infinite."""


class StepContext:
    """Objective and updates of one run (see the module docstring)."""

    def __init__(self, model: SequenceVAE, method: Method, lr: float, clip_grad_norm: float,
                 clock: Callable[[], TrainingClock], random_batch: Callable[[], torch.Tensor],
                 validation_mi: Callable[[], float], restart_model_selection: Callable[[], None],
                 log: Callable[[str], None] = print, bf16: bool = False):
        self.model, self.method, self.clip_grad_norm, self.bf16 = model, method, clip_grad_norm, bf16
        self._clock, self._random_batch, self._validation_mi = clock, random_batch, validation_mi
        self._restart_model_selection, self.log = restart_model_selection, log
        self.set_learning_rate(lr)

    def set_learning_rate(self, lr: float) -> None:
        """Fresh SGD optimisers at ``lr`` (as the reference does at each decay)."""
        self.lr = lr
        encoder = self.model.encoder_parameters()
        self.encoder_optimizer = torch.optim.SGD(encoder, lr=lr) if encoder else None
        self.decoder_optimizer = torch.optim.SGD(self.model.decoder_parameters(), lr=lr)

    # -- the objective ------------------------------------------------------------------
    @property
    def clock(self) -> TrainingClock:
        return self._clock()

    @property
    def kl_weight(self) -> float:
        return self.method.kl_weight(self.clock)

    def penalised(self, out: VaeOutput) -> torch.Tensor:
        """-log p(x|z) + kl_weight * kl_penalty(KL per dim), per sentence [B]."""
        return out.reconstruction_nll + self.kl_weight * self.method.kl_penalty(out.kl_per_dim)

    def sentence_objective(self, model, batch: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """The objective per sentence [B] at given posterior parameters (one z sample)."""
        with self._precision():
            return self.penalised(model.elbo_terms(batch, mu, logvar))

    def objective(self, batch: torch.Tensor, mu: torch.Tensor | None = None,
                  logvar: torch.Tensor | None = None) -> tuple[torch.Tensor, VaeOutput]:
        """The batch mean of the objective, and the forward output; with ``mu`` and ``logvar``
        given, q(z|x) has those parameters instead of the encoder's."""
        with self._precision():
            out = self.model(batch) if mu is None else self.model.elbo_terms(batch, mu, logvar)
            return self.penalised(out).mean(), out

    def encode(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x)'s parameters from the encoder, at the training precision (``train.bf16``)."""
        with self._precision():
            return self.model.encode(batch)

    def _precision(self) -> torch.autocast:
        """bfloat16 autocast for the forward pass when ``train.bf16`` is set (the backward
        follows the forward's dtypes); the model keeps losses and KL terms in float32."""
        return torch.autocast(self.model.output.weight.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    # -- updates ------------------------------------------------------------------------
    def joint_step(self, batch: torch.Tensor) -> StepStatistics:
        return self._update(batch)

    def encoder_step(self, batch: torch.Tensor) -> StepStatistics:
        return self._update(batch, decoder=False)

    def decoder_step(self, batch: torch.Tensor) -> StepStatistics:
        return self._update(batch, encoder=False)

    def _update(self, batch: torch.Tensor, encoder: bool = True, decoder: bool = True) -> StepStatistics:
        loss, out = self.objective(batch)
        return self.step_on(loss, out, batch, encoder, decoder)

    def step_on(self, loss: torch.Tensor, out: VaeOutput, batch: torch.Tensor, encoder: bool = True,
                decoder: bool = True) -> StepStatistics:
        """Back-propagate ``loss`` (the objective's batch mean) from zeroed gradients (whatever
        a method did before, no earlier step's gradients are added), clip the gradient norm
        over all parameters as the reference does, step the chosen sides; returns the step's
        statistics (sums over the batch)."""
        self.model.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
        if encoder and self.encoder_optimizer is not None:
            self.encoder_optimizer.step()
        if decoder:
            self.decoder_optimizer.step()
        loss = loss.detach()
        return {"loss": loss * batch.size(0), "rec": out.reconstruction_nll.detach().sum(),
                "kl": out.kl.detach().sum(), "sentences": batch.size(0), "words": out.num_words}

    # -- services -----------------------------------------------------------------------
    def random_batch(self) -> torch.Tensor:
        """A training batch drawn at random (aggressive training's inner steps)."""
        return self._random_batch()

    def validation_mi(self) -> float:
        """Validation MI over batches of the *training* batch size (the estimate depends on
        the batch; aggressive training's stopping rule uses this one, as the reference)."""
        return self._validation_mi()

    def restart_model_selection(self) -> None:
        """Forget the best checkpoint and the learning-rate rule's history (a new phase)."""
        self._restart_model_selection()


def check_finite(loss_sum: torch.Tensor | float, where: str) -> None:
    """Raise :class:`TrainingDiverged` if a (summed) loss is NaN or infinite (a host sync on a GPU)."""
    if not math.isfinite(float(loss_sum)):
        raise TrainingDiverged(f"loss is {float(loss_sum)} {where}; lower train.lr (e.g. --set train.lr=0.5) "
                               "or check the data")
