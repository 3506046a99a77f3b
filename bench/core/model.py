"""The LSTM VAE shared by every method (He et al. 2019; Long et al. 2019).

Encoder: word embedding -> one-layer LSTM -> a *summary* of its hidden states (the last
state by default; methods such as pooling replace it) -> linear layer to the mean and
log-variance of a diagonal Gaussian q(z|x). Decoder: one-layer LSTM whose input at every
step is [word embedding; z], whose initial cell state is a linear map of z and initial
hidden state its tanh; dropout on decoder input embeddings and outputs.

As in the reference implementation (jxhe/vae-lagging-encoder, ``enc_lstm.py`` and
``dec_lstm.py``), the three linear layers (to (mu, logvar), z -> initial cell, and the
output layer) have no bias. This is not cosmetic: with those biases, aggressive training
on the synthetic corpus of He et al. stays collapsed after its first epoch, where the
reference (and this model without them) escapes (see FIDELITY.md).

The evaluation interface used by :mod:`bench.core.metrics` is ``encode(x) -> (mu, logvar)``
and ``log_px_given_z(x, z) -> [B, K]``, with prior N(0, I). A latent size of 0 gives a
plain LSTM language model through the same code (its z is empty and log p(x) is exact).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from bench.core.config import ModelConfig
from bench.core.data import PAD_ID, predicted_tokens
from bench.core.output_layer import at_least_float32, output_layer_nll, output_layer_nll_bf16


class LastStateSummary(nn.Module):
    """h(x) = h_T, the encoder state at the last real (non-pad) token."""

    def output_dim(self, hidden_dim: int) -> int:
        return hidden_dim

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """states [B, T, H], mask [B, T] (True on real tokens) -> [B, H]."""
        last = mask.sum(dim=1) - 1
        return states[torch.arange(states.size(0), device=states.device), last]


@dataclass
class VaeOutput:
    """What one forward pass gives the objective, per sentence."""

    reconstruction_nll: torch.Tensor  # [B] -log p(x|z), one z sample per sentence, nats
    kl_per_dim: torch.Tensor  # [B, latent_dim] KL(q(z_d|x) || N(0, 1)), nats
    mu: torch.Tensor  # [B, latent_dim]
    logvar: torch.Tensor  # [B, latent_dim]
    num_words: torch.Tensor  # predicted tokens in the batch (words + end tokens), 0-dim, on the batch's device

    @property
    def kl(self) -> torch.Tensor:
        return self.kl_per_dim.sum(dim=1)


def gaussian_kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per dimension: 0.5 (mu^2 + sigma^2 - log sigma^2 - 1)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0)


@dataclass(frozen=True)
class ModelHooks:
    """A method's changes to the model, given to it as one object (``bench.core.loop.build_model``
    gathers them from the method's model-side hooks). Each left at its default keeps the
    standard VAE's part, with the same parameters in the same order (so the same numbers).

    - ``summary``: module (states [B, T, H], mask [B, T]) -> h(x); None: the last state (pooling).
    - ``mean_layer``: module applied to the posterior mean; None: none (BN-VAE).
    - ``decoder_input``: module mapping the decoder's input ids [N, T-1] (the start token
      first) to the ids it reads, targets untouched; it sees ``model.training`` (word dropout).
    - ``latent_to_output``: z also reaches the output layer, logits = W [h_t; z] (Skip-VAE).
    - ``differentiates_twice``: trained through second derivatives (SA-VAE; :meth:`log_px_given_z`).
    """

    summary: nn.Module | None = None
    mean_layer: nn.Module | None = None
    decoder_input: nn.Module | None = None
    latent_to_output: bool = False
    differentiates_twice: bool = False


class SequenceVAE(nn.Module):
    """LSTM encoder / LSTM decoder VAE whose parts a method may change (:class:`ModelHooks`)."""

    def __init__(self, vocab_size: int, config: ModelConfig, latent_dim: int | None = None,
                 hooks: ModelHooks | None = None):
        super().__init__()
        hooks = hooks or ModelHooks()
        summary, mean_layer = hooks.summary, hooks.mean_layer
        self.config = config
        self.differentiates_twice = hooks.differentiates_twice  # see log_px_given_z
        self.latent_dim = config.latent_dim if latent_dim is None else latent_dim
        self.latent_to_output = hooks.latent_to_output and self.latent_dim > 0
        self.vocab_size = vocab_size
        if self.latent_dim > 0:
            self.encoder_embedding = nn.Embedding(vocab_size, config.embed_dim, padding_idx=PAD_ID)
            self.encoder_lstm = nn.LSTM(config.embed_dim, config.encoder_hidden, num_layers=config.encoder_layers,
                                        bidirectional=config.encoder_bidirectional, batch_first=True)
            self.summary = summary if summary is not None else LastStateSummary()
            self.to_posterior = nn.Linear(self.summary.output_dim(config.encoder_hidden), 2 * self.latent_dim,
                                          bias=False)
            self.mean_layer = mean_layer if mean_layer is not None else nn.Identity()
            self.latent_to_cell = nn.Linear(self.latent_dim, config.decoder_hidden, bias=False)
        self.decoder_embedding = nn.Embedding(vocab_size, config.embed_dim, padding_idx=PAD_ID)
        self.decoder_lstm = nn.LSTM(config.embed_dim + self.latent_dim, config.decoder_hidden, batch_first=True)
        self.dropout_in = nn.Dropout(config.dropout_in)
        self.dropout_out = nn.Dropout(config.dropout_out)
        self.decoder_input = hooks.decoder_input  # None: the input ids as they are
        skip = self.latent_dim if self.latent_to_output else 0
        self.output = nn.Linear(config.decoder_hidden + skip, vocab_size, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-0.01, 0.01) for parameters, U(-0.1, 0.1) for embeddings (reference init); with
        ``model.encoder_init: pytorch`` the encoder keeps PyTorch's default initialisation."""
        if self.config.encoder_init == "pytorch" and self.latent_dim > 0:
            self.reset_encoder_to_pytorch_default()
            encoder_ids = {id(p) for p in self.encoder_parameters()}
            self._reference_init((n, p) for n, p in self.named_parameters() if id(p) not in encoder_ids)
        else:
            self._reference_init(self.named_parameters())

    def reset_encoder_to_pytorch_default(self) -> None:
        """The encoder's embedding, LSTM and layer to (mu, logvar) at PyTorch's default
        initialisation (Zhu et al.'s BN-VAE code; ``model.encoder_init: pytorch``)."""
        for module in (self.encoder_embedding, self.encoder_lstm, self.to_posterior):
            module.reset_parameters()

    def reset_decoder(self) -> None:
        """Re-initialise the decoder as at construction (Li et al. 2019 reset it after pretraining)."""
        decoder_ids = {id(p) for p in self.decoder_parameters()}
        self._reference_init((n, p) for n, p in self.named_parameters() if id(p) in decoder_ids)

    def _reference_init(self, named_parameters) -> None:
        for name, parameter in named_parameters:
            if "mean_layer" in name:  # a method's own layer keeps its own initialisation
                continue
            scale = self.config.embed_init_scale if name.endswith("embedding.weight") else self.config.init_scale
            with torch.no_grad():
                nn.init.uniform_(parameter, -scale, scale)

    # -- parameter groups (aggressive training optimises them separately) --------------
    def encoder_parameters(self) -> list[nn.Parameter]:
        decoder_ids = {id(p) for p in self.decoder_parameters()}
        return [p for p in self.parameters() if id(p) not in decoder_ids]

    def decoder_parameters(self) -> list[nn.Parameter]:
        modules = [self.decoder_embedding, self.decoder_lstm, self.output]
        if self.latent_dim > 0:
            modules.append(self.latent_to_cell)
        return [p for m in modules for p in m.parameters()]

    # -- encoder ----------------------------------------------------------------------
    def encoder_states(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """All encoder hidden states [B, T, H] and the mask [B, T] (True on real tokens).

        The LSTM runs over the padded batch without packing: it reads left to right, so the
        state at a real token never depends on the padding after it, and every summary reads
        real positions only (the last one, or a masked pool). States at padding are not zero
        and must not be used. Packing would cost a sort, a copy and a host transfer of the
        lengths per batch for the same numbers (test_model: packed == unpacked).

        A bidirectional encoder (``model.encoder_bidirectional``, CP-VAE's) reads packed
        sequences, since its right-to-left direction would otherwise start in the padding; its
        two directions are averaged per position, as CP-VAE does, so h_t keeps the width H.
        """
        mask = x != PAD_ID
        embedded = self.encoder_embedding(x)
        if not self.encoder_lstm.bidirectional:
            states, _ = run_lstm(self.encoder_lstm, embedded)
            return states, mask
        lengths = mask.sum(dim=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        states, _ = run_lstm(self.encoder_lstm, packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(states, batch_first=True, total_length=x.size(1))
        return states.view(x.size(0), x.size(1), 2, -1).mean(dim=2), mask

    def encoder_features(self, x: torch.Tensor) -> torch.Tensor:
        """h(x): the encoder's summary vector that feeds the posterior [B, H']."""
        states, mask = self.encoder_states(x)
        return self.summary(states, mask)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Parameters of q(z|x) = N(mu, diag(exp(logvar))), each [B, latent_dim]."""
        if self.latent_dim == 0:
            empty = x.new_zeros((x.size(0), 0), dtype=torch.float)
            return empty, empty
        mu, logvar = at_least_float32(self.to_posterior(self.encoder_features(x))).chunk(2, dim=-1)
        return self.mean_layer(mu), logvar  # float32 under bf16 autocast: KL and z stay precise

    @staticmethod
    def sample_posterior(mu: torch.Tensor, logvar: torch.Tensor, num_samples: int) -> torch.Tensor:
        """Reparameterised z = mu + sigma * eps, [B, K, latent_dim]."""
        eps = torch.randn(mu.size(0), num_samples, mu.size(1), device=mu.device, dtype=mu.dtype)
        return mu.unsqueeze(1) + eps * (0.5 * logvar).exp().unsqueeze(1)

    # -- decoder ----------------------------------------------------------------------
    def decoder_states(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """What the output layer reads for inputs x[:, :-1] given z [N, latent_dim]: the decoder
        LSTM's outputs after dropout [N, T-1, H], with z beside them ([N, T-1, H + latent_dim])
        when z also reaches the output layer."""
        ids = x[:, :-1] if self.decoder_input is None else self.decoder_input(x[:, :-1])
        inputs = self.dropout_in(self.decoder_embedding(ids))
        if self.latent_dim > 0:
            steps = z.unsqueeze(1).expand(-1, inputs.size(1), -1)
            inputs = torch.cat([inputs, steps], dim=2)
            cell = self.latent_to_cell(z).unsqueeze(0)
            states, _ = run_lstm(self.decoder_lstm, inputs, (torch.tanh(cell), cell))
            states = self.dropout_out(states)
            return torch.cat([states, steps.to(states.dtype)], dim=2) if self.latent_to_output else states
        states, _ = run_lstm(self.decoder_lstm, inputs)
        return self.dropout_out(states)

    def decoder_logits(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Next-token logits [N, T-1, V] for inputs x[:, :-1] given z [N, latent_dim]."""
        return self.output(self.decoder_states(x, z))

    def log_px_given_z(self, x: torch.Tensor, z: torch.Tensor, bf16: bool = False) -> torch.Tensor:
        """log p(x|z) per sentence and sample [B, K] for z [B, K, latent_dim].

        Sums over the words and the end token; the start token is given, not predicted.
        The output layer and the cross-entropy are one fused function over contiguous
        [B*K*(T-1), H] states (:mod:`bench.core.output_layer`), which never holds more than one
        logits-sized buffer; a model trained through second derivatives (SA-VAE) uses the
        plain operations while gradients are on, whose second derivative needs no recomputation.
        ``bf16`` (evaluation only) computes the output layer's product in bfloat16 with its
        dominant terms recomputed in float32 (:func:`bench.core.output_layer.output_layer_nll_bf16`).
        """
        batch, samples = z.shape[:2]
        x_rep = x if samples == 1 else x.repeat_interleave(samples, dim=0)  # [B*K, T], row b*K+k: sentence b
        states = self.decoder_states(x_rep, z.reshape(batch * samples, -1))
        states, targets = states.reshape(-1, states.size(-1)), x_rep[:, 1:].reshape(-1)
        if bf16:
            token_nll = output_layer_nll_bf16(states, self.output.weight, targets, PAD_ID)
        else:
            token_nll = output_layer_nll(states, self.output.weight, targets, PAD_ID,
                                         plain=self.differentiates_twice and torch.is_grad_enabled())
        return -token_nll.view(batch * samples, -1).sum(dim=1).view(batch, samples)

    def forward(self, x: torch.Tensor) -> VaeOutput:
        """One-sample ELBO pieces for a batch (the training objective's inputs)."""
        return self.elbo_terms(x, *self.encode(x))

    def elbo_terms(self, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> VaeOutput:
        """One-sample ELBO pieces for given posterior parameters (e.g. refined ones, SA-VAE)."""
        z = self.sample_posterior(mu, logvar, 1)
        reconstruction_nll = -self.log_px_given_z(x, z).squeeze(1)
        return VaeOutput(reconstruction_nll, gaussian_kl_per_dim(mu, logvar), mu, logvar, predicted_tokens(x))


def run_lstm(lstm: nn.LSTM, inputs: torch.Tensor, state=None):
    """``lstm(inputs, state)``, except under CUDA autocast, where the LSTM runs in float32: CUDA
    autocast casts cuDNN's RNN to float16 whatever dtype was asked for (ATen's AutocastRNN), so
    ``train.bf16`` would silently train the LSTMs in float16 without loss scaling. On a CPU the
    LSTM follows the autocast dtype (bfloat16 through oneDNN)."""
    if inputs.is_cuda and torch.is_autocast_enabled("cuda"):
        with torch.autocast("cuda", enabled=False):
            return lstm(inputs.float(), None if state is None else tuple(s.float() for s in state))
    return lstm(inputs, state)


def without_cudnn():
    """A context in which LSTMs run PyTorch's own CUDA kernels instead of cuDNN's: cuDNN's RNN
    backward is not differentiable (no second derivative: SA-VAE back-propagates through its SVI
    steps) and refuses to run in eval mode (SA-VAE's test-time refinement). Slower, so only there;
    on a CPU it changes nothing."""
    return torch.backends.cudnn.flags(enabled=False)


def log_standard_normal(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension."""
    return -0.5 * (z.pow(2).sum(-1) + z.size(-1) * math.log(2 * math.pi))


def log_diagonal_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension (broadcasting)."""
    return -0.5 * (((z - mu).pow(2) / logvar.exp()) + logvar + math.log(2 * math.pi)).sum(-1)
