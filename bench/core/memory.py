"""How much memory a run will need at its peak, and how much the machine can give it: a run
that cannot fit is refused before it starts, instead of being killed without a word.

The estimate (bytes, float32 numbers of 4 bytes each), for a model of P parameters, a training
batch of B sentences of at most T tokens (with start and end), vocabulary V, embedding E,
encoder / decoder widths He / Hd and latent L:

    state       = 4 P x 4        parameters, gradients, the best checkpoint kept in memory and
                                 one more copy (optimizer state or a checkpoint being written)
    training    = 4 B T (2 V + 2 E + 10 (He l d + Hd) + L)
                                 the output layer's [B T, V] buffer and one transient of its
                                 size (bench.core.output_layer), both embeddings, and the LSTMs'
                                 saved gates and states (4 gates, cell, hidden, their gradients;
                                 l encoder layers, d = 2 for a bidirectional encoder)
    evaluation  = 4 x 3 x min(eval.iw_max_elements, B' K T' V)
                                 the importance-weighted bound's logit chunk and two transients
                                 of its size (B' sentences an evaluation batch, K samples, T'
                                 the longest test sentence)
    peak        = RUNTIME + state + max(training, evaluation)

RUNTIME (0.5 GiB) is the interpreter, torch and its allocator's slack. The parameter count
comes from building the method's model on torch's ``meta`` device, which allocates nothing, so
a model far too large for the machine is counted without being made. The estimate is meant to
be within a factor of two of a run's measured peak; measured (peak RSS, AVX2 host): smoke 0.37
GiB against 0.5 estimated, cpu_text PTB 1.15 against 1.1, the paper's size on PTB 1.41 against
1.3. It is a guard against settings that cannot fit, not a prediction to plan packing by
(``python -m bench perf`` measures that).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from bench.core.config import RunConfig
from bench.core.data import Corpus
from bench.core.errors import BenchError

FLOAT_BYTES = 4
RUNTIME_BYTES = 2**29  # 0.5 GiB: Python, torch's libraries, allocator slack
GIB = 2**30
CGROUP_FILES = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # (limit, usage): v2, v1
                ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"))


@dataclass(frozen=True)
class MemoryEstimate:
    parameters: int
    state_bytes: int
    training_bytes: int
    evaluation_bytes: int

    @property
    def peak_bytes(self) -> int:
        return RUNTIME_BYTES + self.state_bytes + max(self.training_bytes, self.evaluation_bytes)

    def describe(self) -> str:
        return (f"about {self.peak_bytes / GIB:.1f} GiB at peak ({self.parameters / 1e6:,.2f}M parameters: "
                f"{self.state_bytes / GIB:.1f} GiB with their copies; a training step "
                f"{self.training_bytes / GIB:.1f} GiB)")


def count_parameters(method, vocab_size: int, config: RunConfig) -> int:
    """The parameters of ``method``'s model, built on the meta device (nothing allocated)."""
    from bench.core.loop import build_model
    with torch.device("meta"):
        model = build_model(method, vocab_size, config)
    return sum(p.numel() for p in model.parameters())


def estimate(config: RunConfig, method, corpus: Corpus, device: torch.device = torch.device("cpu")) -> MemoryEstimate:
    """The peak memory of training and evaluating ``config`` on ``corpus`` on ``device`` (module
    docstring; a GPU's IW chunks are larger: bench.core.metrics.iw_chunk_elements)."""
    from bench.core.metrics import iw_chunk_elements
    model = config.model
    vocab = len(corpus.vocab)
    longest = max((len(s) for s in corpus.splits["train"]), default=0) + 2
    longest_test = max((len(s) for s in corpus.splits["test"]), default=0) + 2
    batch = min(config.data.batch_size, max(1, len(corpus.splits["train"])))
    iw_chunk = min(iw_chunk_elements(config.eval.iw_max_elements, device),
                   config.data.eval_batch_size * config.eval.iw_samples * longest_test * vocab)
    parameters = count_parameters(method, vocab, config)
    encoder_states = model.encoder_hidden * model.encoder_layers * (2 if model.encoder_bidirectional else 1)
    per_token = 2 * vocab + 2 * model.embed_dim + 10 * (encoder_states + model.decoder_hidden) + model.latent_dim
    return MemoryEstimate(parameters=parameters, state_bytes=4 * FLOAT_BYTES * parameters,
                          training_bytes=FLOAT_BYTES * batch * longest * per_token,
                          evaluation_bytes=3 * FLOAT_BYTES * iw_chunk)


def available_bytes(device: torch.device) -> tuple[int, str]:
    """Memory this process may still use on ``device``, and where the figure comes from: the
    GPU's free memory, or on a CPU the smaller of the system's available memory and what the
    container's memory limit (cgroup v2 or v1) leaves."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free, "free on the GPU"
    import psutil
    best, source = psutil.virtual_memory().available, "available on this machine"
    for limit_file, usage_file in CGROUP_FILES:
        try:
            limit = Path(limit_file).read_text().strip()
            used = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) - used < best:
            best, source = max(0, int(limit) - used), "left under this container's memory limit"
        break
    return best, source


def check_fits(config: RunConfig, method, corpus: Corpus, device: torch.device) -> tuple[MemoryEstimate, str]:
    """The run's estimate and a line for its header; a run that cannot fit is refused in one line
    with what to change."""
    needed = estimate(config, method, corpus, device)
    have, source = available_bytes(device)
    line = f"memory: {needed.describe()}; {have / GIB:.1f} GiB {source}"
    if needed.peak_bytes > have:
        advice = ("a smaller batch (--set data.batch_size=N), latent (model.latent_dim), width "
                  "(model.encoder_hidden / decoder_hidden / embed_dim) or vocabulary (data.max_vocab)")
        raise BenchError(f"this run needs {needed.describe()}, but {have / GIB:.1f} GiB is {source}; use {advice}"
                         + ("" if device.type == "cuda" else ", or a GPU (--device cuda)"))
    return needed, line
