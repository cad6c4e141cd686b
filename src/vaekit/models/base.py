"""What every model provides: distributions' parameters, never losses.

A forward pass returns a `VAEOutput`: per latent group the sample z with the
parameters of q (and of p where the prior is not N(0, I)), and the parameters of
p(x|z) in the layout the model's `likelihood` reads (`vaekit.likelihoods`).
Objectives take these tensors and score them.

Single-latent models implement `encode` and `decode`; hierarchical ones override
`forward`, `generate` and `reconstruct` as well. Every model also describes its
`decode` as data (`decoder_ops`, see `vaekit.models.export`) for the latent explorer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from vaekit.errors import ConfigError
from vaekit.likelihoods import Likelihood, get_likelihood
from vaekit.models.export import Op, module_ops
from vaekit.objectives import gaussian_log_prob, standard_normal_log_prob


@dataclass
class Latent:
    """One latent group: sample and posterior (and prior) parameters, each (..., D).

    p_mu/p_logvar None: the prior is N(0, I). analytic_kl False: the prior depends
    on a sample drawn after this group's (bottom-up inference), so KL(q || p) has
    no closed form given the sample and the objectives estimate it instead.
    """

    z: torch.Tensor
    q_mu: torch.Tensor
    q_logvar: torch.Tensor
    p_mu: torch.Tensor | None = None
    p_logvar: torch.Tensor | None = None
    analytic_kl: bool = True
    # log q(z|x) and log p(z) at z, (...), where they are not the diagonal Gaussians
    # above (a flow on q, a mixture prior): the objectives then use them as given.
    log_q: torch.Tensor | None = None
    log_p: torch.Tensor | None = None


@dataclass
class Codes:
    """A grid of discrete latents (VQ-VAE): what the objectives need of a quantiser.

    z_e: the encoder's outputs (B, D, h, w); z_q: the codes they were assigned (same
    shape, no gradient: the codebook follows moving averages); indices (B, h, w) of
    codes among `size`; `commitment` the weight of ||z_e - z_q||^2; `prior_logits`
    (B, size, h, w) of a learned p(codes), None for the uniform prior. q is a point
    mass on the nearest codes, so KL(q || p) = -log p(indices)."""

    z_e: torch.Tensor
    z_q: torch.Tensor
    indices: torch.Tensor
    size: int
    commitment: float = 0.0
    prior_logits: torch.Tensor | None = None


@dataclass
class VAEOutput:
    """One pass: `latents` (top group first) and `params` of p(x|z), (B, [k,] P*C, H, W);
    `codes`, a model's discrete latents, where it has them."""

    latents: list[Latent] = field(default_factory=list)
    params: torch.Tensor | None = None
    codes: Codes | None = None

    @property
    def mu(self) -> torch.Tensor:
        return self.latents[0].q_mu

    @property
    def logvar(self) -> torch.Tensor:
        return self.latents[0].q_logvar

    @property
    def z(self) -> torch.Tensor:
        return self.latents[0].z

    @property
    def logits(self) -> torch.Tensor:
        """The decoder's output: logits for the Bernoulli likelihood, as in the seed."""
        return self.params


class VAE(nn.Module):
    """A Gaussian-posterior VAE with a standard-normal prior on one latent group."""

    run_config = None  # the RunConfig a loaded model was trained with
    data_transform = None  # a table model's data.tables.TableTransform (None for images)
    # What the explorer page's latent controls set, in the words the page shows.
    explorer_note = "The map and sliders set z; the image is the mean of p(x|z)."
    # False for a model whose latents are discrete codes (`VAEOutput.codes`): no posterior
    # means to encode, plot or explore, and q(z|x) a point mass, so log p(x)'s importance
    # estimate needs one sample.
    gaussian_latents = True

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        latent_dim: int,
        likelihood: Likelihood | None = None,
    ) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.latent_dim = latent_dim
        self.likelihood = likelihood or get_likelihood("bernoulli")
        # The decoder's output: params_per_channel maps per image channel.
        channels, height, width = self.image_shape
        self.output_shape = (channels * self.likelihood.params_per_channel, height, width)
        # `vaekit.models.latent.attach` may set these: a learned prior, a flow on q(z|x).
        self.prior: nn.Module | None = None
        self.flow: nn.Module | None = None
        self.classes = 0  # a conditional model's label count (its family sets it)

    @property
    def noise_dim(self) -> int:
        """Standard-normal numbers one sample of all latent groups consumes."""
        return self.latent_dim

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) in [0, 1] -> mean and log-variance of q(z|x), each (B, D)."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, D) -> parameters of p(x|z), (B, P*C, H, W) (logits for Bernoulli)."""
        raise NotImplementedError

    def with_label(self, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """t (..., F) with the one-hot label appended, for a conditional model (Sohn et al.
        2015); a missing label is all zeros (no class given); unconditional: t itself."""
        if not self.classes:
            return t
        onehot = t.new_zeros(*t.shape[:-1], self.classes)
        if y is not None:
            onehot = onehot + nn.functional.one_hot(y.long(), self.classes).to(t.dtype)
        return torch.cat([t, onehot], dim=-1)

    def _label(self, y: torch.Tensor | None, k: int | None = None) -> tuple[torch.Tensor, ...]:
        """What encode/decode take besides their input: (y,) for a conditional model."""
        if y is None or not self.classes:
            return ()
        return (y,) if k is None else (y.repeat_interleave(k),)

    def condition(self, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """The keyword a forward pass takes for these labels: {"y": labels} for a conditional
        model, else nothing, so callers with labels at hand need not know which it is."""
        return {"y": labels} if self.classes and labels is not None else {}

    @property
    def context_dim(self) -> int:
        """Size of the features `encode_context` hands a flow."""
        return 2 * self.latent_dim

    def encode_context(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """q(z|x)'s mean and log-variance and the encoder's features h, which a flow's
        parameters depend on (Kingma et al. 2016, fig. 2); families override it with their
        last hidden layer, this default is (mu, logvar) side by side."""
        mu, logvar = self.encode(x)
        return mu, logvar, torch.cat([mu, logvar], dim=-1)

    def warm_start(self, state: dict[str, torch.Tensor]) -> None:
        """Take the weights of the run the config `starts_from` (a second training stage)."""
        raise ConfigError(f"the {type(self).__name__} model does not start from another run")

    def decoder_ops(self) -> list[Op]:
        """`decode` for one code as operations, z (D,) -> p(x|z)'s parameters (P*C, H, W):
        what the explorer page runs in place of PyTorch."""
        raise ConfigError(f"the {type(self).__name__} model does not describe its decoder")

    def explorer_decoder(self) -> list[Op]:
        """z (D,) -> the image (C, H, W) that `vaekit.decode` returns: `decoder_ops`, then
        the likelihood's mean, so the page needs no per-model or per-likelihood code.

        A conditional model's `decoder_ops` take z with the one-hot label appended (as
        `with_label` makes it); the "label" op in front appends the page's chosen label."""
        if not self.likelihood.mean_ops:
            raise ConfigError(
                f"the {self.likelihood.name} likelihood does not describe its mean as operations"
            )
        label = [{"op": "label", "classes": self.classes}] if self.classes else []
        return [*label, *self.decoder_ops(), *(dict(op) for op in self.likelihood.mean_ops)]

    @staticmethod
    def reparameterize(
        mu: torch.Tensor,
        logvar: torch.Tensor,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """z = mu + sigma * eps (Kingma & Welling 2014, section 2.4), eps ~ N(0, I).

        `noise` supplies eps drawn beforehand (see `noise`); else it is drawn here.
        """
        if noise is None:
            noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + noise * torch.exp(0.5 * logvar)

    @staticmethod
    def with_sample_dim(
        mu: torch.Tensor, logvar: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D) posterior parameters as (B, 1, D), at least fp32, to broadcast against
        k samples (B, k, D): the samples and their log densities never drop below fp32."""
        dtype = torch.promote_types(mu.dtype, torch.float32)
        return mu.to(dtype)[:, None], logvar.to(dtype)[:, None]

    def noise(
        self, n: int, k: int | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The eps a forward pass on n examples (k samples each) consumes: (n, [k,] noise_dim).

        Drawing it outside the model lets data-parallel training draw one global
        batch's noise on every rank and hand each rank its slice.
        """
        weight = next(self.parameters())
        shape = (n, self.noise_dim) if k is None else (n, k, self.noise_dim)
        return torch.randn(shape, generator=generator, device=weight.device, dtype=weight.dtype)

    def forward(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
        k: int | None = None,
        y: torch.Tensor | None = None,
    ) -> VAEOutput:
        """q(z|x), a sample, p(x|z); with k, k samples per example as (B, k, ...).

        The encoder runs once per example whatever k is. y: the labels (B,) a
        conditional model takes (ignored by the others).
        """
        if self.flow is None:
            mu, logvar, context = (*self.encode(x, *self._label(y)), None)
        else:
            mu, logvar, context = self.encode_context(x, *self._label(y))
        if k is not None:
            mu, logvar = self.with_sample_dim(mu, logvar)
            context = None if context is None else context[:, None]
            if noise is None:
                noise = self.noise(x.shape[0], k, generator).to(mu.dtype)
        latent = self.latent_group(
            self.reparameterize(mu, logvar, generator, noise), mu, logvar, context
        )
        if k is None:
            return VAEOutput([latent], self.decode(latent.z, *self._label(y)))
        params = self.decode(latent.z.flatten(0, 1), *self._label(y, k))
        params = params.unflatten(0, (x.shape[0], k))
        return VAEOutput([latent], params)

    def latent_group(
        self, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, context: torch.Tensor | None
    ) -> Latent:
        """The group for a Gaussian sample z; with a flow or a learned prior, z pushed through
        the flow and log q(z|x) = log N(z_0; mu, sigma^2) - log|det| (Rezende & Mohamed 2015,
        eq. 7) and log p(z) given, the KL then estimated from the sample."""
        if self.prior is None and self.flow is None:
            return Latent(z, mu, logvar)
        log_q = gaussian_log_prob(z, mu, logvar)
        if self.flow is not None:
            z, log_det = self.flow(z, context)
            log_q = log_q - log_det
        log_p = (
            standard_normal_log_prob(z)
            if self.prior is None
            else self.prior.log_prob(z, self.encode)
        )
        return Latent(z, mu, logvar, log_q=log_q, log_p=log_p, analytic_kl=False)

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws z ~ p(z): N(0, I), or the learned prior's own sampler."""
        if self.prior is not None:
            return self.prior.sample(n, self.encode, generator)
        weight = next(self.parameters())
        return torch.randn(
            n, self.latent_dim, generator=generator, device=weight.device, dtype=weight.dtype
        )

    def generate(
        self, n: int, generator: torch.Generator | None = None, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Parameters of p(x|z) for n draws z ~ p(z): what `sample` pictures show. A
        conditional model decodes labels y (n,), drawn uniformly when not given."""
        z = self.prior_sample(n, generator)
        if self.classes and y is None:
            y = torch.randint(self.classes, (n,), generator=generator, device=z.device)
        return self.decode(z, *self._label(y))

    def generate_from(
        self,
        z: torch.Tensor,
        generator: torch.Generator | None = None,
        y: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Parameters of p(x|z) for given top-group codes z (n, D), any lower groups drawn
        from their priors as `generate` draws them: how a sampler other than the prior
        (`vaekit.gmm`) generates. One group: `decode`."""
        return self.decode(z, *self._label(y))

    def posterior_point(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The code the decoder reads at the centre of q(z|x), (B, D): the encoder's mean,
        or with a flow that mean pushed through it (z_T at eps = 0), since the decoder
        was trained on z_T, never on the encoder's Gaussian z_0."""
        if self.flow is None:
            return self.encode(x, *self._label(y))[0]
        mu, _, context = self.encode_context(x, *self._label(y))
        return self.flow(mu, context)[0]

    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Parameters of p(x|z) at the posterior's centre (`posterior_point`): the model's
        best reconstruction."""
        return self.decode(self.posterior_point(x, y), *self._label(y))


class EncoderDecoderVAE(VAE):
    """A one-group VAE built as `encoder` -> (`fc_mu`, `fc_logvar`) and `decoder` modules."""

    encoder: nn.Module
    fc_mu: nn.Module
    fc_logvar: nn.Module
    decoder: nn.Module

    def encode(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode_context(x, y)[:2]

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(self.with_label(z, y))

    @property
    def context_dim(self) -> int:
        return self.fc_mu.in_features

    def encode_context(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        h = self.encoder(self.with_label_planes(x, y))
        return self.fc_mu(h), self.fc_logvar(h), h

    def with_label_planes(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """x (B, C, H, W) with one constant plane per class after its channels, the label's
        plane all ones: a convolutional encoder's way of reading the one-hot label."""
        if not self.classes:
            return x
        planes = self.with_label(x.new_zeros(x.shape[0], 0), y)
        return torch.cat([x, planes[:, :, None, None].expand(-1, -1, *x.shape[2:])], dim=1)

    def decoder_ops(self) -> list[Op]:
        return module_ops(self.decoder)


def quarter_features(model: str, image_shape: tuple[int, int, int], channels: int) -> tuple:
    """(feature shape, feature count) after two stride-2 layers of a convolutional model.

    Raises ConfigError for sides not divisible by 4, naming the model.
    """
    _, height, width = image_shape
    if height % 4 or width % 4:
        raise ConfigError(f"{model} model needs image sides divisible by 4; got {height}x{width}")
    shape = (channels, height // 4, width // 4)
    return shape, channels * (height // 4) * (width // 4)
