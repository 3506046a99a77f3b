"""Word dropout (Bowman et al. 2016, "Generating Sentences from a Continuous Space", CoNLL):
while training, each word the decoder reads is replaced by the unknown-word token
with probability ``rate``; the targets stay the true words. A decoder that cannot see its
history must take more of it from z. Evaluation reads every word. Bowman et al. vary the
word keep rate (1 - rate) from 1 to 0 rather than fix one; rate 0 is the standard VAE.
Combines with objective-side methods (``word_dropout+kl_anneal``, Bowman et al.'s own pair)."""

from dataclasses import dataclass

import torch
from torch import nn

from bench.core.data import BOS_ID, PAD_ID, UNK_ID
from bench.core.method import Method, register_method


@dataclass(frozen=True)
class WordDropoutSettings:
    rate: float = 0.25  # a keep rate of 0.75, within the range Bowman et al. explore (no single published value)

    def __post_init__(self):
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate must be in [0, 1]")


class WordDropout(nn.Module):
    """Input ids [N, T-1] -> the same with words replaced by <unk> at ``rate`` (training only;
    the start token and padding are never replaced)."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0:
            return ids
        dropped = (torch.rand(ids.shape, device=ids.device) < self.rate) & (ids != PAD_ID) & (ids != BOS_ID)
        return ids.masked_fill(dropped, UNK_ID)


@register_method("word_dropout")
class WordDropoutVAE(Method):
    """The standard VAE whose decoder reads corrupted inputs while it trains."""

    settings_class = WordDropoutSettings

    def decoder_input(self) -> nn.Module:
        return WordDropout(self.settings.rate)
