"""The fused output layer + cross-entropy equals the plain operations, in value and gradients."""

import torch
from torch.nn import functional as F

from bench.core.output_layer import output_layer_nll, output_layer_nll_bf16

PAD = 0


def plain(states, weight, targets):
    return F.cross_entropy(states @ weight.t(), targets, ignore_index=PAD, reduction="none")


def inputs(dtype=torch.double, rows=23, hidden=8, vocab=30, scale=1.0):
    generator = torch.Generator().manual_seed(0)
    states = (scale * torch.randn(rows, hidden, generator=generator, dtype=dtype)).requires_grad_()
    weight = torch.randn(vocab, hidden, generator=generator, dtype=dtype).requires_grad_()
    targets = torch.randint(1, vocab, (rows,), generator=generator)
    targets[:4] = PAD  # padding rows must give 0 and no gradient
    return states, weight, targets


def test_values_and_gradients_equal_cross_entropy():
    states, weight, targets = inputs()
    ours, reference = output_layer_nll(states, weight, targets, PAD), plain(states, weight, targets)
    torch.testing.assert_close(ours, reference)
    assert torch.all(ours[:4] == 0)
    torch.testing.assert_close(output_layer_nll(states, weight, targets, PAD, plain=True), reference)
    upstream = torch.randn_like(ours)
    for got, want in zip(torch.autograd.grad(ours, (states, weight), upstream),
                         torch.autograd.grad(reference, (states, weight), upstream)):
        torch.testing.assert_close(got, want)


def test_first_and_second_derivatives_match_finite_differences():
    # SA-VAE differentiates through its refinement steps (create_graph=True)
    states, weight, targets = inputs()
    function = lambda s, w: output_layer_nll(s, w, targets, PAD)  # noqa: E731
    assert torch.autograd.gradcheck(function, (states, weight))
    assert torch.autograd.gradgradcheck(function, (states, weight))


def test_a_second_backward_with_retain_graph_gives_the_same_gradient():
    states, weight, targets = inputs()
    loss = output_layer_nll(states, weight, targets, PAD).sum()
    first = torch.autograd.grad(loss, states, retain_graph=True)[0]
    second = torch.autograd.grad(loss, states)[0]
    torch.testing.assert_close(first, second)


def test_bfloat16_autocast_stays_close_on_sharp_logits():
    # logits of about +-20, like a trained model's: the products run in bfloat16, the softmax in float32
    states, weight, targets = inputs(torch.float32, rows=64, hidden=256, vocab=500, scale=0.3)
    reference = plain(states, weight, targets)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = output_layer_nll(states, weight, targets, PAD)
    assert ours.dtype == torch.float32
    assert (states @ weight.t()).abs().max() > 10
    assert (ours - reference).abs().max() < 0.1  # per token; bfloat16 keeps 8 bits of mantissa
    ours.sum().backward()
    assert states.grad.dtype == torch.float32 and weight.grad.dtype == torch.float32


def test_bfloat16_evaluation_recomputes_the_dominant_terms_in_float32():
    states, weight, targets = inputs(torch.float32, rows=64, hidden=256, vocab=500, scale=0.3)
    states, weight = states.detach(), weight.detach()
    reference = plain(states, weight, targets)
    rounded = plain(states.bfloat16().float(), weight.bfloat16().float(), targets)  # bfloat16 products, no repair
    ours = output_layer_nll_bf16(states, weight, targets, PAD)
    assert torch.all(ours[:4] == 0)
    plain_error, our_error = (rounded - reference).abs().max(), (ours - reference).abs().max()
    assert plain_error > 0.02 and our_error < 0.005 and our_error < plain_error / 5
