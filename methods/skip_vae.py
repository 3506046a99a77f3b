"""Skip-VAE (Dieng, Kim, Rush & Blei 2019, "Avoiding Latent Variable Collapse with Generative
Skip Models", AISTATS; a row of He et al. 2019's tables): z is connected to the decoder's
layers and to its output, so that the likelihood cannot ignore it as easily. With the one-layer
decoder here, z already enters the LSTM at every step (He et al.'s decoder); the skip adds
z to the output layer's input: p(x_t | x_<t, z) = softmax(W [h_t; z])."""

from bench.core.method import Method, register_method


@register_method("skip_vae")
class SkipVAE(Method):
    """The standard VAE with z also fed to the output layer."""

    def latent_to_output(self) -> bool:
        return True
