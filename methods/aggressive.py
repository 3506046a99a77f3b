"""Aggressive inference-network training (He et al. 2019, ICLR, Algorithm 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from bench.core.method import Method, register_method
from bench.core.step import StepContext, StepStatistics


@dataclass(frozen=True)
class AggressiveSettings:
    max_inner_steps: int = 99  # encoder updates per batch at most (reference: `while sub_iter < 100`, from 1)
    check_every: int = 15  # compare the accumulated loss per word every N inner steps (reference: 15)
    initial_previous_mi: float = 0.0  # MI the first epoch is compared with (reference text.py: 0; toy.py: -1)

    def __post_init__(self):
        if self.check_every < 1 or self.max_inner_steps <= 2 * self.check_every:
            raise ValueError("max_inner_steps must exceed 2 * check_every (the second check is the first that can "
                             "stop the inner loop), with check_every >= 1")


@register_method("aggressive")
class Aggressive(Method):
    """Aggressive training: encoder optimised to convergence before each decoder step, until validation MI stops rising.

    For each training batch, while aggressive mode is on: encoder-only steps, the first on
    the current batch and each later one on a random training batch; the loss per word is
    accumulated and compared every ``check_every`` steps (the first check against "no
    previous loss"), and the loop stops when it no longer falls (or after
    ``max_inner_steps``). Then one decoder-only step on the current batch. After each
    epoch, aggressive mode ends for good once validation MI, computed on batches of the
    training batch size as in the reference, is lower than at the previous epoch; from
    then on, ordinary joint training. As in the reference code (jxhe/vae-lagging-encoder,
    ``text.py``), the inner steps do not advance the KL schedule.
    """

    settings_class = AggressiveSettings

    def __init__(self, settings=None):
        super().__init__(settings)
        self.aggressive = True
        self.previous_mi = self.settings.initial_previous_mi
        self.inner_steps = 0  # encoder-only steps this epoch, for the curves

    def train_step(self, context: StepContext, batch: torch.Tensor) -> StepStatistics:
        if not self.aggressive:
            return context.joint_step(batch)
        previous_loss, loss_sum, words = float("inf"), 0.0, 0
        encoder_batch = batch
        for inner in range(1, self.settings.max_inner_steps + 1):
            stats = context.encoder_step(encoder_batch)
            self.inner_steps += 1
            loss_sum += stats["loss"]
            words += stats["words"]
            encoder_batch = context.random_batch()
            if inner % self.settings.check_every == 0:
                current_loss = float(loss_sum) / float(words)  # the only wait for the device in the loop
                if current_loss > previous_loss:
                    break
                previous_loss, loss_sum, words = current_loss, 0.0, 0
        return context.decoder_step(batch)

    def on_epoch_end(self, context: StepContext, epoch: int, valid: Mapping[str, float]) -> dict[str, Any]:
        row = {"aggressive": self.aggressive, "encoder_inner_steps": self.inner_steps}
        if self.aggressive:
            mi = context.validation_mi()
            row["aggressive_rule_mi"] = mi
            if mi < self.previous_mi:
                self.aggressive = False
                context.log(f"  aggressive training ends after epoch {epoch}: validation MI "
                            f"{mi:.3f} < {self.previous_mi:.3f}")
            self.previous_mi = mi
        self.inner_steps = 0
        return row

    def state_dict(self) -> dict[str, Any]:
        return {"aggressive": self.aggressive, "previous_mi": self.previous_mi}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.aggressive = state.get("aggressive", True)
        self.previous_mi = state.get("previous_mi", self.settings.initial_previous_mi)
