"""Pooling the encoder's hidden states (Long, Cao & Cheung 2019, arXiv 1911.03976)."""

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from bench.core.method import Method, register_method


@dataclass(frozen=True)
class PoolingSettings:
    pooling: Literal["max", "mean", "max_mean"] = "max"  # max_mean: both, concatenated


class MaskedPooling(nn.Module):
    """h(x) = max_t h_t or (1/T) sum_t h_t over the real tokens only (padding never wins or dilutes)."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def output_dim(self, hidden_dim: int) -> int:
        return 2 * hidden_dim if self.kind == "max_mean" else hidden_dim

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """states [B, T, H], mask [B, T] -> [B, H] (or [B, 2H] for max_mean)."""
        mask = mask.unsqueeze(-1)
        pooled = []
        if self.kind in ("max", "max_mean"):
            pooled.append(states.masked_fill(~mask, float("-inf")).max(dim=1).values)
        if self.kind in ("mean", "max_mean"):
            pooled.append((states * mask).sum(dim=1) / mask.sum(dim=1))
        return torch.cat(pooled, dim=-1)


@register_method("pooling")
class Pooling(Method):
    """Pooling: the posterior reads max- or mean-pooled encoder states over time instead of the last one."""

    settings_class = PoolingSettings

    def encoder_summary(self) -> nn.Module:
        return MaskedPooling(self.settings.pooling)
