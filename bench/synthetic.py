"""Built-in synthetic corpus: sentences from a random LSTM language model driven by z.

In the spirit of the synthetic data of He et al. 2019 (Section 6.1): a latent
z ~ N(0, 1) (one dimension, so that the true posterior of a model trained on it can be
computed by numerical integration), and a randomly initialised LSTM decoder whose initial
state and every input depend on z samples each sentence word by word. The weights are
scaled up so that z changes the sentences a lot, which gives a VAE something to encode.
Deterministic from ``DataConfig.synthetic_seed``; needs no files.
"""

from __future__ import annotations

import torch

from bench.config import DataConfig

EMBED_DIM = 32
HIDDEN_DIM = 64
LATENT_DIM = 1
LOGIT_SCALE = 12.0  # about 2.4 nats of entropy per word (4.0 gave 6.0, nearly uniform over 1000 words)
LATENT_SCALE = 3.0  # larger -> z moves the sentence distribution further


@torch.no_grad()
def generate_corpus(config: DataConfig) -> dict[str, list[list[str]]]:
    """Sample train/valid/test splits; words are spelt ``w0``, ``w1``, ..."""
    generator = torch.Generator().manual_seed(config.synthetic_seed)
    vocab, length = config.synthetic_vocab, config.synthetic_length

    def weight(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * scale / shape[-1] ** 0.5

    embedding = weight(vocab, EMBED_DIM, scale=EMBED_DIM ** 0.5)
    lstm = torch.nn.LSTMCell(EMBED_DIM + LATENT_DIM, HIDDEN_DIM)
    for parameter in lstm.parameters():
        parameter.copy_(weight(*parameter.shape, scale=2.0) if parameter.dim() == 2 else 0.0 * parameter)
    to_cell = weight(HIDDEN_DIM, LATENT_DIM, scale=LATENT_SCALE)
    to_logits = weight(vocab, HIDDEN_DIM, scale=LOGIT_SCALE)

    sizes = {"train": config.synthetic_train, "valid": config.synthetic_valid, "test": config.synthetic_test}
    out = {}
    for split, count in sizes.items():
        z = torch.randn(count, LATENT_DIM, generator=generator) * LATENT_SCALE
        cell = z @ to_cell.T
        hidden = torch.tanh(cell)
        word = torch.randint(vocab, (count,), generator=generator)
        words = []
        for _ in range(length):
            hidden, cell = lstm(torch.cat([embedding[word], z], dim=1), (hidden, cell))
            cumulative = torch.softmax(hidden @ to_logits.T, dim=1).cumsum(dim=1)
            # Inverse-CDF sampling: one uniform per sentence, far faster than torch.multinomial.
            uniform = torch.rand(count, 1, generator=generator) * cumulative[:, -1:]
            word = torch.searchsorted(cumulative, uniform).squeeze(1).clamp_max(vocab - 1)
            words.append(word)
        ids = torch.stack(words, dim=1).tolist()
        out[split] = [[f"w{i}" for i in row] for row in ids]
    return out
