"""Estimators of log-likelihood, KL, mutual information and active units.

The model-facing functions are duck-typed on two methods: ``encode(x) -> (mu, logvar)``
(a diagonal Gaussian q(z|x)) and ``log_px_given_z(x, z) -> [B, K]``; the prior is N(0, I).
All quantities are in nats. These functions are the public evaluation API: a user can
score their own model with them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import torch

from bench.core.config import EvalConfig
from bench.core.data import predicted_tokens
from bench.core.model import gaussian_kl_per_dim, log_diagonal_normal, log_standard_normal


DISPERSION_SENTENCES = 2000  # pairwise cosine distances cost O(N^2)


GPU_IW_MEMORY_SHARE = 16  # a GPU's IW logit chunk: at most 1/16 of its memory (three such buffers live)


def iw_chunk_elements(configured: int, device: torch.device) -> int:
    """The bound on the decoder logits of one IW chunk on ``device``: ``eval.iw_max_elements``
    on a CPU (sized for a CPU's memory and caches), and on a GPU at least 1/16 of the device's
    total memory in float32 numbers, so that the paper's K = 500 on Yahoo takes a few dozen
    decoder passes per batch instead of 500 sequential ones. The GPU's total (not its free)
    memory: the chunking, and with it the order of the random draws, is then fixed for a GPU
    model and does not depend on what else runs there."""
    if device.type != "cuda":
        return configured
    total = torch.cuda.get_device_properties(device).total_memory
    return max(configured, total // (4 * GPU_IW_MEMORY_SHARE))


@torch.no_grad()  # not inference_mode: SA-VAE's refined posterior needs autograd inside
def iw_log_likelihood(model, x: torch.Tensor, num_samples: int, samples_per_chunk: int | None = None,
                      max_elements: int = 50_000_000, bf16: bool = False) -> torch.Tensor:
    """Importance-weighted estimate of log p(x) per sentence, [B] (Burda et al. 2016, Eq. 8).

        log p(x) ~= log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x),   z_k ~ q(z|x)

    A lower bound in expectation that tightens as K grows, exact for any K when q(z|x)
    is the true posterior. All sentences of the batch are scored together, K samples
    at a time in chunks of ``samples_per_chunk`` (by default as many as keep the decoder's
    logits below ``max_elements`` numbers), so memory stays bounded for K = 500.
    With an empty latent (a language model) log p(x|z) = log p(x) and one pass is exact.
    ``bf16`` computes the decoder's output layer, most of the arithmetic, in bfloat16 (GPUs,
    CPUs with AVX-512 BF16 or AMX) with its dominant terms recomputed in float32
    (:func:`bench.core.output_layer.output_layer_nll_bf16`); the LSTM, z and the log-sum-exp stay
    float32. ``eval.iw_bf16`` turns it on for a run; ``bench.cli.perf --bf16`` measures it.
    """
    mu, logvar = model.encode(x)
    if mu.size(1) == 0:
        return model.log_px_given_z(x, mu.unsqueeze(1)).squeeze(1)
    if samples_per_chunk is None:
        per_sample = x.size(0) * x.size(1) * getattr(model, "vocab_size", 1)
        samples_per_chunk = max(1, max_elements // max(1, per_sample))
    mu, logvar = mu.unsqueeze(1), logvar.unsqueeze(1)  # [B, 1, nz] to broadcast over samples
    log_weights = []
    for start in range(0, num_samples, samples_per_chunk):
        count = min(samples_per_chunk, num_samples - start)
        eps = torch.randn(mu.size(0), count, mu.size(2), device=mu.device, dtype=mu.dtype)
        z = mu + eps * (0.5 * logvar).exp()  # [B, k, nz]
        log_px = model.log_px_given_z(x, z, bf16=True) if bf16 else model.log_px_given_z(x, z)
        log_weights.append(log_px + log_standard_normal(z) - log_diagonal_normal(z, mu, logvar))
    return torch.logsumexp(torch.cat(log_weights, dim=1), dim=1) - math.log(num_samples)


def kl_to_prior(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per sentence, [B], in closed form for a diagonal Gaussian:

        KL = 0.5 * sum_d (mu_d^2 + sigma_d^2 - log sigma_d^2 - 1)    (Kingma & Welling 2014, App. B)
    """
    return gaussian_kl_per_dim(mu, logvar).sum(dim=-1)


MI_SAMPLES = EvalConfig.mi_samples  # z samples per sentence in :func:`mutual_information`
MI_CHUNK_ELEMENTS = 20_000_000  # density-matrix entries held at once (float64: 160 MB)


@dataclass(frozen=True)
class MIEstimate:
    """An MI estimate (nats) and its Monte-Carlo standard error given the posteriors."""

    value: float
    se: float
    sentences: int
    samples: int


def mutual_information(mu: torch.Tensor, logvar: torch.Tensor, samples: int = MI_SAMPLES) -> MIEstimate:
    """I_q(x; z) for x uniform over the N sentences given, z ~ q(z|x) (the estimate verdicts use):

        I = (1/N) sum_i E_{z ~ q(z|x_i)} [ log q(z|x_i) - log q(z) ],   q(z) = (1/N) sum_j q(z|x_j),

    the aggregate posterior over the whole evaluation split (Hoffman & Johnson 2016, "ELBO
    surgery": E_x KL(q(z|x) || p(z)) = I + KL(q(z) || p(z)), so 0 <= I <= KL and I <= log N).
    Monte Carlo with ``samples`` draws z_is per sentence from the global RNG, and *the same* z in
    both terms: log q(z_is|x_i) is read from the row of the [z, j] density matrix whose
    log-sum-exp gives log q(z_is), so posteriors that do not depend on x give exactly 0 (up to
    rounding), not noise. The densities are computed in float64 as one matrix product,

        -2 log N(z; mu_j, s_j^2) = sum_d z_d^2 / s_jd^2 - 2 z_d mu_jd / s_jd^2 + mu_jd^2 / s_jd^2 + log s_jd^2 + log 2 pi,

    in chunks of rows (memory O(chunk x N)). The draws are independent given the posteriors, so
    the standard error of the Monte-Carlo part is se = sqrt(sum_i Var_s(d_is) / S) / N with
    d_is = log q(z_is|x_i) - log q(z_is). The test split's sentences are fixed (every method is
    scored on the same ones), so se is the evaluation's own noise. Compare
    :func:`mi_batch`: He et al.'s per-batch estimate, capped at log(batch size).
    """
    sentences, dims = mu.shape
    if dims == 0 or sentences == 0:
        return MIEstimate(0.0, 0.0, sentences, samples)
    mu, logvar = mu.double(), logvar.double()
    precision = (-logvar).exp()  # [N, D]
    linear = mu * precision
    constant = (mu * linear + logvar).sum(1) + dims * math.log(2 * math.pi)  # [N]
    z = mu.unsqueeze(1) + torch.randn(sentences, samples, dims, dtype=torch.float64, device=mu.device) \
        * (0.5 * logvar).exp().unsqueeze(1)
    z = z.reshape(-1, dims)  # row i * S + s: sentence i's s-th draw
    owner = torch.arange(sentences, device=mu.device).repeat_interleave(samples)
    rows = max(1, MI_CHUNK_ELEMENTS // sentences)
    differences = []
    for start in range(0, len(z), rows):
        part = z[start: start + rows]
        log_density = -0.5 * (part.pow(2) @ precision.T - 2 * part @ linear.T + constant)  # [rows, N]
        own = log_density.gather(1, owner[start: start + rows].unsqueeze(1)).squeeze(1)
        differences.append(own - (torch.logsumexp(log_density, dim=1) - math.log(sentences)))
    per_draw = torch.cat(differences).view(sentences, samples)
    spread = per_draw.var(dim=1).sum() / samples if samples > 1 else torch.tensor(math.nan)
    return MIEstimate(float(per_draw.mean()), float(spread.sqrt() / sentences), sentences, samples)


def mi_batch(mu: torch.Tensor, logvar: torch.Tensor) -> float:
    """He et al.'s Monte-Carlo estimate of I_q(x; z) on one batch (He et al. 2019, Eq. 4 and
    code ``calc_mi``), kept to compare with published numbers:

        I_q = E_x E_{q(z|x)} [log q(z|x)] - E_x E_{q(z|x)} [log q(z)],
        q(z) ~= (1/B) sum_j q(z|x_j)  (aggregate posterior over the batch),

    with one z sample per sentence for the second term and the first term in closed form
    (minus the entropy of a diagonal Gaussian). The aggregate posterior makes the
    estimate depend on the batch: it is at most log B. Average over batches with
    batch-size weights, as the reference does. :func:`mi_batch_noise_floor` gives the
    estimator's noise (its two terms use different z, so it is noisy even at MI = 0).
    """
    batch, dims = mu.shape
    if dims == 0:
        return 0.0
    neg_entropy = (-0.5 * dims * math.log(2 * math.pi) - 0.5 * (1 + logvar).sum(-1)).mean()
    z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()  # [B, nz]
    log_density = log_diagonal_normal(z.unsqueeze(1), mu.unsqueeze(0), logvar.unsqueeze(0))  # [B, B]
    log_aggregate = torch.logsumexp(log_density, dim=1) - math.log(batch)
    return float(neg_entropy - log_aggregate.mean())


def mi_batch_noise_floor(latent_dim: int, sentences: int) -> float:
    """Standard deviation of :func:`mi_batch` (averaged over ``sentences``, in any batches) for a
    model that carries no information: every q(z|x) the same Gaussian.

    Then q(z) = q(z|x), so each sentence contributes -log q(z_i|x_i) - H[q] = (1/2) sum_d (e_d^2 - 1)
    with e ~ N(0, I), of variance latent_dim / 2, whatever the Gaussian and the batching:

        sd = sqrt(latent_dim / (2 * sentences))

    A collapsed model's batch estimate is a draw of this noise (it can be negative, or above the
    KL); it counts as information only above about twice it (95%).
    """
    return math.sqrt(latent_dim / (2 * sentences)) if latent_dim > 0 and sentences > 0 else 0.0


def mean_mi_batch(posteriors: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Batch-size-weighted mean of :func:`mi_batch` over batches of (mu, logvar), as the
    reference's ``calc_mi``; the batches decide the aggregate posterior."""
    total, count = 0.0, 0
    for mu, logvar in posteriors:
        total += mi_batch(mu, logvar) * mu.size(0)
        count += mu.size(0)
    return total / max(1, count)


def mi_exceeds_kl(mi: float, kl: float, se: float) -> bool:
    """Whether an MI estimate lies above the KL by more than twice its standard error: I <= KL
    holds exactly (:func:`mutual_information`), so such an estimate is broken, not noisy."""
    return mi - kl > 2 * (se if se == se else 0.0)  # se NaN: no error known, any excess counts


def active_units(posterior_means: torch.Tensor, threshold: float = 0.01) -> int:
    """Number of latent dimensions the encoder uses (Burda et al. 2016, Section 5.2):

        AU = #{ d : Var_x( E_q(z|x)[z_d] ) > threshold }

    posterior_means: [N, latent_dim], the mean of q(z|x) for each sentence of an
    evaluation set (unbiased variance across sentences, as the reference code).
    """
    if posterior_means.size(1) == 0 or posterior_means.size(0) < 2:
        return 0
    return int((posterior_means.var(dim=0) > threshold).sum())


def feature_dispersion(features: torch.Tensor) -> dict[str, float]:
    """How much a set of feature vectors [N, D] varies across inputs (Long et al. 2019, RQ1).

        variance        = (1/D) sum_d Var_n(f_nd)                       (unbiased, over the N inputs)
        cosine_distance = mean over pairs n != m of 1 - cos(f_n, f_m)

    Both are 0 when every input gets the same features. Long et al. argue that the last
    encoder state of a collapsing VAE has little dispersion across sentences.
    """
    n = features.size(0)
    if n < 2 or features.size(1) == 0:
        return {"variance": 0.0, "cosine_distance": 0.0}
    unit = torch.nn.functional.normalize(features.double(), dim=1)
    similarity = unit @ unit.T
    mean_off_diagonal = (similarity.sum() - similarity.diagonal().sum()) / (n * (n - 1))
    return {"variance": float(features.double().var(dim=0).mean()), "cosine_distance": float(1 - mean_off_diagonal)}


def max_positions(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Where each dimension of the encoder states peaks, per sentence: [B, H] codes, 0 at the
    start token, 2 at the end token (each sentence's last real position), 1 anywhere between.
    Max pooling reads exactly these positions (Bosc & Vincent 2020's ``--study-pooling``)."""
    peak = states.float().masked_fill(~mask.unsqueeze(-1), float("-inf")).argmax(dim=1)  # [B, H]
    last = (mask.sum(dim=1) - 1).unsqueeze(1)
    return torch.where(peak == 0, 0, torch.where(peak == last, 2, 1))


def max_position_shares(codes: torch.Tensor) -> dict[str, float]:
    """From :func:`max_positions` codes [N, H]: the share of dimensions whose maximum falls on the
    start token in most sentences (``max_at_start``), on the end token in most sentences
    (``max_at_end``), and the rest (``max_inside``). A max-pooled encoder whose dimensions mostly
    peak at a fixed token summarises little of the sentence, whatever its dispersion."""
    if not codes.numel():
        return {}
    start = ((codes == 0).float().mean(dim=0) > 0.5).float().mean()
    end = ((codes == 2).float().mean(dim=0) > 0.5).float().mean()
    return {"max_at_start": float(start), "max_at_end": float(end), "max_inside": float(1 - start - end)}


def encoder_statistics(model, batches: Iterable[torch.Tensor], mi_samples: int, mi_batch_size: int,
                       device: torch.device | str = "cpu") -> dict[str, float]:
    """The encoder's side of :func:`evaluate` over every sentence of ``batches``: KL, both MI
    estimates, AU, dispersion and where the encoder states peak (encoder passes only)."""
    means, logvars, features, peaks = [], [], [], []
    for x in batches:
        x = x.to(device)
        mu, logvar = model.encode(x)
        means.append(mu.float().cpu())
        logvars.append(logvar.float().cpu())
        if mu.size(1) == 0:
            continue
        if hasattr(model, "encoder_states"):  # one encoder pass gives h(x) and where the states peak
            states, mask = model.encoder_states(x)
            features.append(model.summary(states, mask).float().cpu())
            if sum(map(len, peaks)) < DISPERSION_SENTENCES:
                peaks.append(max_positions(states, mask).cpu())
        elif hasattr(model, "encoder_features"):  # e.g. a refined posterior's wrapper
            features.append(model.encoder_features(x).float().cpu())
    mu, logvar = torch.cat(means), torch.cat(logvars)
    sentences, dims = mu.shape
    kl = float(kl_to_prior(mu.double(), logvar.double()).mean()) if sentences else 0.0
    mi = mutual_information(mu, logvar, mi_samples)
    result = {"kl": kl, "mi": mi.value, "mi_se": mi.se, "mi_samples": mi_samples, "encoder_sentences": sentences,
              "mi_above_kl": mi_exceeds_kl(mi.value, kl, mi.se),
              "mi_batch": mean_mi_batch(zip(mu.split(mi_batch_size), logvar.split(mi_batch_size))),
              "mi_batch_noise": mi_batch_noise_floor(dims, sentences), "au": active_units(mu)}
    if features:  # dispersion of h(x) and of the posterior mean over (at most) the first sentences
        subset = slice(0, DISPERSION_SENTENCES)
        for name, values in (("feature", torch.cat(features)[subset]), ("mu", mu[subset])):
            for statistic, value in feature_dispersion(values).items():
                result[f"{name}_{statistic}"] = value
    if peaks:
        result.update(max_position_shares(torch.cat(peaks)[:DISPERSION_SENTENCES]))
    return result


@torch.no_grad()
def evaluate(model, batches: Iterable[torch.Tensor], eval_config: EvalConfig | None = None,
             iw_batches: Iterable[torch.Tensor] | None = None, device: torch.device | str = "cpu",
             encoder_batches: Iterable[torch.Tensor] | None = None) -> dict[str, float]:
    """Score a model on a split: ELBO terms, KL, MI (two estimates), AU, dispersion, and
    optionally IW NLL and PPL.

    ``rec``, ``elbo_nll`` (= reconstruction + KL, one z sample) and ``elbo_ppl`` are per-sentence
    averages in nats over ``batches``. The encoder's statistics need no decoder pass, so they are
    taken over ``encoder_batches`` (the whole split; default ``batches``): ``kl`` (mean KL to the
    prior), ``mi`` with its standard error ``mi_se`` (:func:`mutual_information`, the aggregate
    posterior over all those sentences), ``mi_batch`` (He et al.'s per-batch estimate, batches of
    ``batches``' size, with ``mi_batch_noise``, :func:`mi_batch_noise_floor`), ``au``, the
    dispersion of h(x) and of the posterior mean, and ``mi_above_kl`` (an estimate above the KL by
    more than twice its error: broken). With ``iw_batches`` (the whole split, or a subset of it
    taken in file order so that it is representative), also ``nll`` = -IW log-likelihood with
    ``iw_samples`` samples and ``ppl`` = exp(total NLL / total predicted tokens, end token
    included) over those sentences, and ``nll_per_sentence`` (file order when ``iw_batches``
    is a :class:`~bench.core.data.BatchedSplit`), which paired comparisons of runs resample.
    Random draws come from the global RNG: the caller seeds it (the trainer: from the run's seed).
    """
    eval_config = eval_config or EvalConfig()
    was_training = model.training
    model.eval()
    totals = dict(rec=0.0, kl=0.0, sentences=0, words=0)
    batch_size = 1
    for x in batches:
        x = x.to(device)
        out = model(x)
        batch_size = max(batch_size, x.size(0))
        totals["rec"] += float(out.reconstruction_nll.sum())
        totals["kl"] += float(out.kl.sum())
        totals["sentences"] += x.size(0)
        totals["words"] += int(out.num_words)
    n = max(1, totals["sentences"])
    result = {"rec": totals["rec"] / n, "elbo_nll": (totals["rec"] + totals["kl"]) / n,
              "elbo_ppl": math.exp((totals["rec"] + totals["kl"]) / max(1, totals["words"])),
              "sentences": totals["sentences"], "words": totals["words"]}
    result.update(encoder_statistics(model, batches if encoder_batches is None else encoder_batches,
                                     eval_config.mi_samples, batch_size, device))
    if iw_batches is not None:
        per_sentence, words = [], 0
        for x in iw_batches:
            x = x.to(device)
            per_sentence.append(-iw_log_likelihood(model, x, eval_config.iw_samples,
                                                   max_elements=iw_chunk_elements(eval_config.iw_max_elements,
                                                                                  torch.device(device)),
                                                   bf16=eval_config.iw_bf16).double().cpu())
            words += int(predicted_tokens(x))
        nlls = torch.cat(per_sentence)
        order = getattr(iw_batches, "order", None)  # a BatchedSplit: back to file order, for pairing runs
        if order is not None:
            nlls = torch.empty_like(nlls).index_copy_(0, torch.tensor(order), nlls)
        nll = float(nlls.sum())
        result.update(nll=nll / max(1, len(nlls)), ppl=math.exp(nll / max(1, words)), iw_sentences=len(nlls),
                      iw_samples=eval_config.iw_samples,
                      nll_per_sentence=[round(v, 4) for v in nlls.tolist()])
    model.train(was_training)
    return result
