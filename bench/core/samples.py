"""Text read off a model: reconstructions, prior samples and an interpolation.

Posterior collapse is, in the end, a statement about text: a collapsed model's reconstruction
of a sentence does not depend on the sentence. Every record keeps, decoded by the same code for
every method (greedy decoding, the most likely next word until the end token):

- ``reconstructions``: for the first ``SENTENCES`` test sentences (file order), the sentence,
  its decoding from the posterior mean, and from one posterior sample (Bowman et al. 2016);
- ``prior``: ``PRIOR_SAMPLES`` decodings of z ~ N(0, I);
- ``interpolation``: decodings along the line between the posterior means of the first two of
  those sentences (Bowman et al. 2016's homotopy), ``STEPS`` points from one to the other.

A model without a latent (the language model) decodes the same text for every z. Random draws
come from the caller's stream (the trainer's evaluation stream, seeded by the run's seed).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from bench.core.data import BOS_ID, EOS_ID, PAD_ID, Vocabulary, pad_batch

SENTENCES, PRIOR_SAMPLES, STEPS = 5, 3, 5
MAX_WORDS = 40  # a decoding stops here if the end token never comes


@torch.no_grad()
def greedy_decode(model, z: torch.Tensor, max_words: int = MAX_WORDS) -> list[list[int]]:
    """Word ids decoded greedily from z [N, latent_dim]: start token, then argmax of the next-word
    distribution given the prefix and z, until the end token (not included) or ``max_words``."""
    was_training = model.training
    model.eval()
    prefix = torch.full((z.size(0), 1), BOS_ID, dtype=torch.long, device=z.device)
    done = torch.zeros(z.size(0), dtype=torch.bool, device=z.device)
    for _ in range(max_words + 1):
        inputs = torch.cat([prefix, prefix.new_full((z.size(0), 1), PAD_ID)], dim=1)  # x[:, :-1] = prefix
        following = model.decoder_logits(inputs, z)[:, -1].argmax(dim=-1)
        following = following.masked_fill(done, PAD_ID)
        prefix = torch.cat([prefix, following.unsqueeze(1)], dim=1)
        done |= following == EOS_ID
        if done.all():
            break
    model.train(was_training)
    return [[t for t in row[1:] if t not in (PAD_ID, EOS_ID)][:max_words] for row in prefix.tolist()]


def text_samples(model, vocab: Vocabulary, sentences: Sequence[Sequence[int]],
                 device: torch.device | str = "cpu") -> dict[str, Any]:
    """Reconstructions of ``sentences``, prior samples and one interpolation, as text (module doc)."""
    words = lambda ids: " ".join(vocab.decode(ids))  # noqa: E731
    was_training = model.training
    model.eval()
    with torch.no_grad():
        x = pad_batch(sentences).to(device)
        mu, logvar = model.encode(x)
        sample = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        prior = torch.randn(PRIOR_SAMPLES, mu.size(1), device=mu.device, dtype=mu.dtype)
        weights = torch.linspace(0, 1, STEPS, device=mu.device, dtype=mu.dtype).unsqueeze(1)
        line = (1 - weights) * mu[0] + weights * mu[min(1, len(mu) - 1)]
    from_mean, from_sample = greedy_decode(model, mu), greedy_decode(model, sample)
    model.train(was_training)
    return {"decoding": "greedy",
            "reconstructions": [{"input": words(s), "from_mean": words(m), "from_sample": words(z)}
                                for s, m, z in zip(sentences, from_mean, from_sample)],
            "prior": [words(ids) for ids in greedy_decode(model, prior)],
            "interpolation": [words(ids) for ids in greedy_decode(model, line)]}


def distinct_reconstructions(samples: dict[str, Any]) -> int:
    """How many different texts the posterior means decode to: 1 for a collapsed model."""
    return len({r["from_mean"] for r in samples["reconstructions"]})
