"""LSTM language model: the decoder alone, no latent variable."""

from bench.core.method import Method, register_method


@register_method("lm")
class LanguageModel(Method):
    """LSTM language model (no z): exact NLL, the reference every VAE is compared with."""

    uses_latent = False
