"""Standard VAE: the baseline every remedy is compared with."""

from bench.core.method import Method, register_method


@register_method("vae")
class StandardVAE(Method):
    """Standard VAE: ELBO with KL weight 1, last encoder state (Bowman et al. 2016)."""
