"""The decoder's output layer and token cross-entropy as one autograd function.

    nll_i = -log softmax(h_i W^T)[y_i]    (0 where y_i is padding),
    d nll_i / d logits_i = softmax(h_i W^T) - onehot(y_i).

``F.linear`` followed by ``F.cross_entropy`` holds four [N, V] buffers (logits,
log-probabilities, a zero-filled gradient of the log-probabilities, the gradient of the
logits), each freshly allocated and passed over. With V = 20,000 they dominate the memory
traffic of a step. Here one buffer serves throughout: the logits become log-probabilities
in place, the backward turns them into the gradient in place. The numbers are those of
``F.cross_entropy(h @ W.T, y, ignore_index=pad, reduction="none")`` to float tolerance
(tests/test_output_layer.py).

Under autocast the two matrix products run in its dtype (bfloat16) and the softmax in
float32. Differentiating twice (SA-VAE's ``create_graph=True``) recomputes the plain
operations, which autograd can differentiate again; a caller that knows it will
differentiate twice asks for them directly (``plain=True``) and saves that recomputation.
:func:`output_layer_nll_bf16` is the evaluation-only variant with a bfloat16 product whose
dominant terms are recomputed in float32 (``eval.iw_bf16``).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def output_layer_nll(states: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                     ignore_index: int, plain: bool = False) -> torch.Tensor:
    """Per-token negative log-likelihood [N] for decoder states [N, H], output weight [V, H]
    and targets [N]; tokens equal to ``ignore_index`` get 0. ``plain`` uses the standard
    operations instead (cheaper when the result will be differentiated twice)."""
    keep = targets != ignore_index
    return _plain_nll(states, weight, targets, keep) if plain else _OutputLayerNLL.apply(states, weight, targets, keep)


def at_least_float32(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in float32 if it is in a 16-bit type (autocast), else as it is (float64 stays)."""
    return tensor.float() if tensor.element_size() < 4 else tensor


def _logits(states, weight):
    """states W^T in float32 or wider for the softmax, and the product's dtype (bfloat16
    under autocast)."""
    logits = states.mm(weight.t())
    return at_least_float32(logits), logits.dtype


def _plain_nll(states, weight, targets, keep):
    """The same numbers from standard operations (for differentiating twice)."""
    return F.cross_entropy(_logits(states, weight)[0], targets, reduction="none") * keep


def _log_probs(states, weight):
    """log softmax(states W^T) [N, V], in place in the logits' buffer, and the product's dtype."""
    logits, compute_dtype = _logits(states, weight)
    return torch.log_softmax(logits, dim=1, out=logits), compute_dtype


REFINED_LOGITS = 4  # per token, the largest logits recomputed in float32 by the bfloat16 evaluation


def output_layer_nll_bf16(states: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                          ignore_index: int) -> torch.Tensor:
    """:func:`output_layer_nll` for evaluation, with the [N, V] product in bfloat16 (float32
    accumulation) and the terms that matter recomputed in float32.

    Rounding states and weights to bfloat16 moves a logit l_v by about 2^-9 |l_v|. The
    log-normaliser follows its largest logits, so on a peaked softmax the error stays: about
    1 nat per 80-token sentence at paper size. With l~ the rounded logits, lse~ their
    log-sum-exp, S the ``REFINED_LOGITS`` largest l~ of the token and l the float32 logits:

        log sum_v exp(l_v) = lse~ + log1p( sum_{v in S} [exp(l_v - lse~) - exp(l~_v - lse~)] ),

    exact but for the rounding of the logits outside S, weighted by their probability;
    nll = that - l_y, with the target logit l_y in float32 as well. ``states`` must be the
    float32 decoder outputs (an LSTM run in bfloat16 rounds them before this can help).
    No gradient.
    """
    with torch.no_grad():
        logits = (states.bfloat16() @ weight.bfloat16().t()).float()
        top = logits.topk(REFINED_LOGITS, dim=1).indices  # [N, S]
        rounded_top = logits.gather(1, top)
        log_probs_top = torch.log_softmax(logits, dim=1, out=logits).gather(1, top)
        rounded_lse = rounded_top[:, :1] - log_probs_top[:, :1]  # [N, 1]
        exact_top = torch.bmm(weight[top], states.unsqueeze(2)).squeeze(2)
        correction = (torch.exp(exact_top - rounded_lse) - log_probs_top.exp()).sum(1)
        exact_target = (states * weight[targets]).sum(1)
        return (rounded_lse.squeeze(1) + torch.log1p(correction) - exact_target) * (targets != ignore_index)


class _OutputLayerNLL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, states, weight, targets, keep):
        log_probs, ctx.compute_dtype = _log_probs(states, weight)
        ctx.save_for_backward(states, weight, targets, keep)
        ctx.log_probs = log_probs  # not saved_tensors: the backward overwrites it
        return -log_probs.gather(1, targets.unsqueeze(1)).squeeze(1) * keep

    @staticmethod
    def backward(ctx, grad_nll):
        states, weight, targets, keep = ctx.saved_tensors
        wanted = ctx.needs_input_grad[:2]
        if torch.is_grad_enabled():  # create_graph=True: the gradient must itself be differentiable
            inputs = [t for t, need in zip((states, weight), wanted) if need]
            grads = iter(torch.autograd.grad(_plain_nll(states, weight, targets, keep), inputs, grad_nll,
                                             create_graph=True))
            return tuple(next(grads) if need else None for need in wanted) + (None, None)
        log_probs, ctx.log_probs = ctx.log_probs, None
        if log_probs is None:  # a second backward (retain_graph=True): the buffer is spent
            log_probs, _ = _log_probs(states, weight)
        scale = (grad_nll * keep).unsqueeze(1)  # [N, 1]
        grad_logits = log_probs.exp_().mul_(scale)  # softmax * g, in the saved buffer
        grad_logits.scatter_add_(1, targets.unsqueeze(1), -scale)  # minus g at the target
        grad_logits = grad_logits.to(ctx.compute_dtype)
        grad_states = grad_logits.mm(weight.to(ctx.compute_dtype)).to(states.dtype) if wanted[0] else None
        grad_weight = grad_logits.t().mm(states.to(ctx.compute_dtype)).to(weight.dtype) if wanted[1] else None
        return grad_states, grad_weight, None, None
