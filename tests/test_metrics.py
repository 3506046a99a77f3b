"""Estimators against cases with known answers."""

import math

import pytest
import torch

from bench.core.config import ModelConfig
from bench.core.data import PAD_ID, pad_batch
from bench.core.metrics import (active_units, evaluate, iw_log_likelihood, kl_to_prior, mi_batch,
                                mi_batch_noise_floor, mutual_information)
from bench.core.model import ModelHooks, SequenceVAE


class LinearGaussian:
    """p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I) with orthogonal columns of W.

    Then p(x) = N(b, W W^T + s^2 I) in closed form and the exact posterior is diagonal:
    Sigma = (I + W^T W / s^2)^-1, mean = Sigma W^T (x - b) / s^2.
    """

    def __init__(self, mean_shift=0.0, var_scale=1.0):
        self.W = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
        self.b = torch.tensor([0.5, -1.0, 0.3], dtype=torch.float64)
        self.s2 = 0.25
        self.mean_shift, self.var_scale = mean_shift, var_scale

    def encode(self, x):
        precision = 1.0 + (self.W ** 2).sum(0) / self.s2  # diagonal of I + W^T W / s^2
        var = 1.0 / precision
        mean = ((x - self.b) @ self.W) * var / self.s2
        return mean + self.mean_shift, torch.log(var * self.var_scale).expand_as(mean)

    def log_px_given_z(self, x, z):
        mean = z @ self.W.T + self.b  # [B, K, D]
        return torch.distributions.Normal(mean, self.s2 ** 0.5).log_prob(x.unsqueeze(1)).sum(-1)

    def log_px(self, x):
        cov = self.W @ self.W.T + self.s2 * torch.eye(3, dtype=torch.float64)
        return torch.distributions.MultivariateNormal(self.b, cov).log_prob(x)


X = torch.tensor([[0.0, 0.0, 0.0], [3.0, -2.0, 1.0], [-1.5, 0.5, 0.2]], dtype=torch.float64)


def test_iw_is_exact_with_the_true_posterior():
    model = LinearGaussian()
    for k in (1, 7, 50):
        torch.testing.assert_close(iw_log_likelihood(model, X, k, samples_per_chunk=3), model.log_px(X))


def test_iw_converges_from_below_with_a_wrong_posterior():
    model = LinearGaussian(mean_shift=0.15, var_scale=1.5)
    truth = model.log_px(X)
    elbo_like = torch.stack([iw_log_likelihood(model, X, 1) for _ in range(400)]).mean(0)
    many = iw_log_likelihood(model, X, 20000, samples_per_chunk=1000)
    assert (elbo_like < truth - 0.02).all()  # K=1 is the ELBO: strictly below log p(x)
    torch.testing.assert_close(many, truth, atol=0.02, rtol=0)


def test_kl_to_prior_closed_form():
    mu = torch.tensor([[0.0, 0.0], [1.0, 2.0], [0.0, 0.0]])
    logvar = torch.tensor([[0.0, 0.0], [0.0, 0.0], [math.log(2.0), math.log(0.5)]])
    expected = torch.tensor([0.0, 2.5, 0.5 * (2 - math.log(2) - 1) + 0.5 * (0.5 - math.log(0.5) - 1)])
    torch.testing.assert_close(kl_to_prior(mu, logvar), expected)
    reference = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, (0.5 * logvar).exp()), torch.distributions.Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(kl_to_prior(mu, logvar), reference)


def exact_mixture_mi(mu, logvar):
    """I(x; z) for x uniform over the batch and q(z|x) 1-D Gaussians, by quadrature."""
    z = torch.linspace(-15, 15, 60001, dtype=torch.float64)
    dz = z[1] - z[0]
    components = torch.distributions.Normal(mu.unsqueeze(1), (0.5 * logvar).exp().unsqueeze(1))
    log_q = components.log_prob(z)  # [N, Z]
    log_aggregate = torch.logsumexp(log_q, 0) - math.log(len(mu))
    return float((log_q.exp() * (log_q - log_aggregate)).sum(1).mean() * dz)


def test_mi_batch_matches_quadrature():
    mu = torch.tensor([-2.0, -0.5, 0.0, 1.0, 3.0], dtype=torch.float64)
    logvar = torch.tensor([0.0, -1.0, -2.0, -0.5, 0.3], dtype=torch.float64)
    truth = exact_mixture_mi(mu, logvar)
    estimates = [mi_batch(mu.unsqueeze(1), logvar.unsqueeze(1)) for _ in range(20000)]
    assert 0.5 < truth < math.log(5)
    assert sum(estimates) / len(estimates) == pytest.approx(truth, abs=0.02)


def test_mi_batch_is_zero_on_average_when_posteriors_ignore_x():
    mu, logvar = torch.zeros(64, 3), torch.zeros(64, 3)
    estimates = [mi_batch(mu, logvar) for _ in range(2000)]
    assert sum(estimates) / len(estimates) == pytest.approx(0.0, abs=0.02)


def test_mi_batch_noise_floor_is_the_spread_of_the_estimator_on_an_information_free_posterior():
    torch.manual_seed(1)
    latent, sizes = 8, [50, 50, 50, 30]  # 180 sentences in uneven batches, as an evaluation has them
    mu, logvar = torch.tensor([0.3] * latent), torch.tensor([-1.0] * latent)
    estimates = torch.tensor([sum(mi_batch(mu.expand(b, -1), logvar.expand(b, -1)) * b for b in sizes)
                              / sum(sizes) for _ in range(4000)])
    assert float(estimates.mean()) == pytest.approx(0.0, abs=0.01)
    assert float(estimates.std()) == pytest.approx(mi_batch_noise_floor(latent, sum(sizes)), rel=0.05)
    assert mi_batch_noise_floor(latent, sum(sizes)) == pytest.approx(math.sqrt(8 / 360))
    assert mi_batch_noise_floor(0, 100) == 0.0  # a language model has no latent


def gaussian_channel(sentences: int, dims: int, total_mi: float, seed: int = 12345):
    """x ~ N(0, I_dims), q(z|x) = N(a x, s^2 I) with s^2 = 1 - a^2 (so q(z) = N(0, I)): the MI is
    known, I = (dims / 2) log(1 + a^2 / s^2); a is chosen to make it ``total_mi`` nats."""
    snr = math.exp(2 * total_mi / dims) - 1  # a^2 / s^2
    a2 = snr / (1 + snr)
    x = torch.randn(sentences, dims, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)  # not the
    # global stream the estimate draws from (the same numbers as x would correlate z with x)
    return math.sqrt(a2) * x, torch.full((sentences, dims), math.log(1 - a2), dtype=torch.float64)


@pytest.mark.parametrize("dims", [1, 32])
@pytest.mark.parametrize("total_mi", [0.0, 0.1, 2.0])
def test_mutual_information_recovers_the_analytic_mi_of_gaussian_posteriors(dims, total_mi):
    """The whole-split estimate against I = (d/2) log(1 + a^2/s^2): 2,000 sentences, 10 samples
    each; within 0.03 nats, and its reported error is about the spread of repeated estimates."""
    torch.manual_seed(0)
    mu, logvar = gaussian_channel(2000, dims, total_mi)
    estimates = [mutual_information(mu, logvar) for _ in range(12)]
    values = torch.tensor([e.value for e in estimates])
    assert float(values.mean()) == pytest.approx(total_mi, abs=0.03)
    if total_mi > 0:  # the reported standard error is the draws' spread (within 50% from 12 draws)
        assert float(values.std()) == pytest.approx(estimates[0].se, rel=0.5)
    assert estimates[0].se < 0.03  # the goal: at most 0.03 nats (1 sd) at latent 32
    kl = float(kl_to_prior(mu, logvar).mean())
    assert float(values.mean()) <= kl + 0.01  # I <= E_x KL(q(z|x) || p(z))


def test_mutual_information_is_exactly_zero_when_posteriors_ignore_x():
    """The same z in both terms: identical posteriors give 0 up to rounding, at any latent size;
    a nearly collapsed encoder (means spread by 1e-3) is far below 0.02."""
    torch.manual_seed(0)
    for dims in (1, 32):
        same = mutual_information(torch.full((3000, dims), 0.3), torch.full((3000, dims), -1.0))
        assert abs(same.value) < 1e-9 and same.se < 1e-9
    nearly = mutual_information(1e-3 * torch.randn(3000, 32), torch.zeros(3000, 32))
    assert abs(nearly.value) < 0.02
    assert mutual_information(torch.zeros(10, 0), torch.zeros(10, 0)).value == 0.0  # no latent


def test_mutual_information_is_not_capped_at_log_batch():
    """Well separated posteriors carry log N nats over N sentences, far above He et al.'s cap of
    log 50 = 3.91 for the batch estimate."""
    torch.manual_seed(0)
    mu, logvar = torch.randn(2000, 32) * 3, torch.full((2000, 32), -6.0)
    estimate = mutual_information(mu, logvar)
    assert estimate.value == pytest.approx(math.log(2000), abs=0.01)
    assert estimate.value > math.log(50) + 3


def test_active_units_counts_dimensions_with_variance_above_threshold():
    torch.manual_seed(0)
    n = 5000
    means = torch.cat([torch.randn(n, 3),              # variance 1: active
                       torch.full((n, 2), 0.7),        # constant: inactive
                       0.07 * torch.randn(n, 1),       # variance 0.0049 < 0.01: inactive
                       0.2 * torch.randn(n, 1)], 1)    # variance 0.04: active
    assert active_units(means) == 4
    assert active_units(means, threshold=0.5) == 3
    assert active_units(torch.full((10, 4), 1.0)) == 0


def tiny_model(latent_dim):
    config = ModelConfig(embed_dim=8, encoder_hidden=8, decoder_hidden=8, latent_dim=2, dropout_in=0.0,
                         dropout_out=0.0)
    torch.manual_seed(1)
    model = SequenceVAE(12, config, latent_dim=latent_dim)
    for p in model.parameters():  # larger weights so that sentences get distinct scores
        torch.nn.init.normal_(p, std=0.5)
    return model.eval()


def test_log_px_given_z_ignores_padding_and_matches_token_by_token():
    model = tiny_model(latent_dim=2)
    sentences = [[5, 6, 7, 8, 9], [4, 5], [10]]
    batch = pad_batch(sentences)
    z = torch.randn(3, 2, 2)
    batched = model.log_px_given_z(batch, z)
    for row, sentence in enumerate(sentences):
        alone = model.log_px_given_z(pad_batch([sentence]), z[row: row + 1])
        torch.testing.assert_close(batched[row], alone[0])
        # token by token: sum of log softmax of each next token given the prefix
        full = pad_batch([sentence])
        manual = 0.0
        for t in range(1, full.size(1)):
            logits = model.decoder_logits(full[:, : t + 1], z[row, :1])[:, -1]
            manual += torch.log_softmax(logits, -1)[0, full[0, t]]
        torch.testing.assert_close(alone[0, 0], manual)


def test_language_model_iw_nll_equals_exact_nll():
    model = tiny_model(latent_dim=0)
    batches = [pad_batch([[5, 6, 7], [8, 9, 4]]), pad_batch([[4, 4, 5, 6, 7, 8]])]
    result = evaluate(model, batches, iw_batches=batches)
    with torch.no_grad():
        exact = -sum(float(model.log_px_given_z(x, torch.zeros(x.size(0), 1, 0)).sum()) for x in batches) / 3
    assert result["nll"] == pytest.approx(exact, rel=1e-5)
    assert result["elbo_nll"] == pytest.approx(exact, rel=1e-5)
    assert result["kl"] == 0.0 and result["au"] == 0
    assert result["ppl"] == pytest.approx(math.exp(exact * 3 / (4 + 4 + 7)), rel=1e-5)


def test_iw_bound_of_the_vae_is_at_least_the_elbo_on_average():
    model = tiny_model(latent_dim=2)
    batch = pad_batch([[5, 6, 7], [8, 9, 4], [4, 10, 11]])
    mu, logvar = model.encode(batch)
    z = model.sample_posterior(mu, logvar, 2000)
    elbo = model.log_px_given_z(batch, z).mean(1) - kl_to_prior(mu, logvar)
    iw = iw_log_likelihood(model, batch, 500)
    assert (iw >= elbo - 1e-3).all()


def test_feature_dispersion_known_values():
    from bench.core.metrics import feature_dispersion
    same = torch.tensor([[1.0, 2.0, 3.0]]).repeat(5, 1)
    assert feature_dispersion(same) == {"variance": 0.0, "cosine_distance": pytest.approx(0.0, abs=1e-12)}
    # two orthogonal unit vectors: cosine distance 1; per-dim variance of (1,0),(0,1) is 0.5 each
    orthogonal = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert feature_dispersion(orthogonal) == {"variance": pytest.approx(0.5), "cosine_distance": pytest.approx(1.0)}
    opposite = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])  # cosine -1: distance 2; variance 2 per dim
    assert feature_dispersion(opposite) == {"variance": pytest.approx(2.0), "cosine_distance": pytest.approx(2.0)}


class OneDimLinearGaussian:
    """p(z) = N(0, 1), p(x|z) = N(w z + b, s^2 I): E[z|x] = w.(x - b) / (s^2 + |w|^2) in closed form."""

    def __init__(self):
        self.w = torch.tensor([1.5, -0.5])
        self.b = torch.tensor([0.2, 0.1])
        self.s2 = 0.5

    def log_px_given_z(self, x, z):
        mean = z * self.w + self.b  # [B, G, 2]
        return torch.distributions.Normal(mean, self.s2 ** 0.5).log_prob(x.unsqueeze(1)).sum(-1)


def test_true_posterior_mean_by_quadrature_matches_closed_form():
    from bench.cli.diagnose import true_posterior_mean
    model = OneDimLinearGaussian()
    x = torch.tensor([[0.0, 0.0], [2.0, -1.0], [-3.0, 0.5], [5.0, -2.0]])
    closed = ((x - model.b) @ model.w) / (model.s2 + model.w.pow(2).sum())
    torch.testing.assert_close(true_posterior_mean(model, x), closed, atol=1e-4, rtol=0)


# -- the optimised paths give the previous implementation's numbers -------------------------------
def previous_encoder_states(model, x):
    """Before the throughput work: the encoder LSTM over packed sequences, zero states at padding."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    lengths = (x != PAD_ID).sum(dim=1)
    packed = pack_padded_sequence(model.encoder_embedding(x), lengths, batch_first=True, enforce_sorted=False)
    states, _ = pad_packed_sequence(model.encoder_lstm(packed)[0], batch_first=True, total_length=x.size(1))
    return states


def previous_log_px_given_z(model, x, z):
    """Before the throughput work: x repeated for every sample, cross-entropy on a transposed view."""
    batch, samples = z.shape[:2]
    x_rep = x.repeat_interleave(samples, dim=0)
    logits = model.decoder_logits(x_rep, z.reshape(batch * samples, -1))
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), x_rep[:, 1:], ignore_index=PAD_ID,
                                            reduction="none")
    return -nll.sum(dim=1).view(batch, samples)


def previous_objective(model, x):
    """The one-sample training loss per sentence, computed the previous way."""
    states, mask = previous_encoder_states(model, x), x != PAD_ID
    mu, logvar = model.to_posterior(model.summary(states, mask)).chunk(2, dim=-1)
    z = model.sample_posterior(mu, logvar, 1)
    return -previous_log_px_given_z(model, x, z).squeeze(1) + 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(1)


@pytest.mark.parametrize("summary", ["last", "max"])
def test_optimised_paths_equal_the_previous_implementation(summary):
    from methods.pooling import MaskedPooling
    torch.manual_seed(0)
    model = SequenceVAE(50, ModelConfig(embed_dim=8, encoder_hidden=12, decoder_hidden=12, latent_dim=3,
                                        init_scale=0.3, embed_init_scale=0.5),
                        hooks=ModelHooks(summary=MaskedPooling("max") if summary == "max" else None))
    x = pad_batch([[5, 6, 7, 8, 9, 10, 11], [12, 13], [14, 15, 16, 17], [18]])
    mask = x != PAD_ID
    states, _ = model.encoder_states(x)
    torch.testing.assert_close(states[mask], previous_encoder_states(model, x)[mask])  # real positions
    model.eval()
    z = torch.randn(4, 5, 3)
    torch.testing.assert_close(model.log_px_given_z(x, z), previous_log_px_given_z(model, x, z))
    # the IW estimate on fixed samples: the same noise drawn for both
    torch.manual_seed(1)
    fast = iw_log_likelihood(model, x, 20, samples_per_chunk=7)
    torch.manual_seed(1)
    mu, logvar = model.to_posterior(model.summary(previous_encoder_states(model, x), mask)).chunk(2, dim=-1)
    weights = []
    for count in (7, 7, 6):
        eps = torch.randn(4, count, 3)
        zs = mu.unsqueeze(1) + eps * (0.5 * logvar).exp().unsqueeze(1)
        weights.append(previous_log_px_given_z(model, x, zs)
                       + torch.distributions.Normal(0.0, 1.0).log_prob(zs).sum(-1)
                       - torch.distributions.Normal(mu.unsqueeze(1), (0.5 * logvar).exp().unsqueeze(1)).log_prob(zs).sum(-1))
    torch.testing.assert_close(fast, torch.logsumexp(torch.cat(weights, 1), 1) - math.log(20))
    # the training loss for a fixed seed and batch (dropout on)
    model.train()
    torch.manual_seed(2)
    out = model(x)
    torch.manual_seed(2)
    torch.testing.assert_close(out.reconstruction_nll + out.kl, previous_objective(model, x))
    assert int(out.num_words) == (7 + 2 + 4 + 1) + 4  # words + end tokens; start tokens are not predicted


def test_the_iw_chunk_bound_is_the_setting_on_a_cpu_and_sized_to_a_gpus_memory(monkeypatch):
    from types import SimpleNamespace
    from bench.core.metrics import iw_chunk_elements
    assert iw_chunk_elements(50_000_000, torch.device("cpu")) == 50_000_000
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace(total_memory=80 * 2**30))
    assert iw_chunk_elements(50_000_000, torch.device("cuda")) == 80 * 2**30 // 64  # 1/16 of it in float32 numbers
    assert iw_chunk_elements(5 * 10**9, torch.device("cuda")) == 5 * 10**9  # never below the setting


@pytest.mark.parametrize("summary", ["last", "max"])
def test_a_bidirectional_encoder_never_reads_padding(summary):
    """CP-VAE's encoder (2 bidirectional layers, directions averaged): its right-to-left pass
    must start at each sentence's last real token, so a sentence's features are the same alone
    and in a padded batch, whichever padding follows it."""
    from bench.core.config import ModelConfig
    from bench.core.model import ModelHooks, SequenceVAE
    from methods.pooling import MaskedPooling
    torch.manual_seed(0)
    config = ModelConfig(embed_dim=8, encoder_hidden=6, decoder_hidden=6, latent_dim=3, encoder_layers=2,
                         encoder_bidirectional=True, encoder_init="pytorch")
    model = SequenceVAE(30, config, hooks=ModelHooks(summary=MaskedPooling("max") if summary == "max" else None)).eval()
    assert model.encoder_lstm.bidirectional and model.encoder_lstm.num_layers == 2
    short, long = [5, 6, 7], [5, 6, 7, 8, 9, 10, 11]
    batch = pad_batch([short, long, short[:2]])
    states, mask = model.encoder_states(batch)
    assert states.shape == (3, batch.size(1), 6)  # directions averaged: width H
    alone = model.encoder_features(pad_batch([short]))
    torch.testing.assert_close(model.encoder_features(batch)[0], alone[0])
    torch.testing.assert_close(model.encoder_features(pad_batch([short[:2]]))[0], model.encoder_features(batch)[2])
    # the right-to-left direction does see the words after a position (else it would not be bidirectional)
    first_state = model.encoder_states(pad_batch([short]))[0][0, 0]
    assert not torch.allclose(first_state, model.encoder_states(pad_batch([[5, 9, 9]]))[0][0, 0])


def test_max_positions_say_where_each_dimension_peaks():
    from bench.core.metrics import max_position_shares, max_positions
    # two sentences of 4 and 3 tokens (start, words, end; then padding), three dimensions:
    # dim 0 peaks at the start token, dim 1 at each sentence's end token, dim 2 inside
    states = torch.tensor([[[9., 0., 0.], [0., 0., 5.], [0., 0., 0.], [0., 7., 0.]],
                           [[8., 0., 0.], [0., 0., 6.], [0., 4., 0.], [99., 99., 99.]]])
    mask = torch.tensor([[True, True, True, True], [True, True, True, False]])
    codes = max_positions(states, mask)
    assert codes.tolist() == [[0, 2, 1], [0, 2, 1]]  # the padding's 99 is never read
    assert max_position_shares(codes) == {"max_at_start": pytest.approx(1 / 3), "max_at_end": pytest.approx(1 / 3),
                                          "max_inside": pytest.approx(1 / 3)}
