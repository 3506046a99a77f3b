"""The method interface: how a collapse remedy plugs into the shared core.

A method is a small class registered by name with a frozen dataclass of settings. It may
change only these things, each through one hook:

- the model: ``encoder_summary`` (how encoder hidden states become h(x); pooling),
  ``posterior_mean_layer`` (a layer on the posterior mean; BN-VAE), ``initialise`` (a
  change to the reference initialisation; BN-VAE), ``uses_latent``;
- the objective: ``kl_weight`` (a schedule; annealing, beta-VAE) and ``kl_penalty`` (how
  the per-dimension KL enters the loss; free bits);
- the optimisation: ``train_step`` (one update on a batch; aggressive, SA-VAE) and
  ``on_epoch_end`` (state changes after validation); both receive a
  :class:`~bench.core.step.StepContext` (the objective, the updates, a random batch, logging),
  never the training loop itself; a ``train_step`` that back-propagates through gradients
  (SA-VAE) sets ``differentiates_twice``;
- the evaluation: ``refine_posterior`` (test-time refinement of q(z|x); SA-VAE), whose
  metrics are recorded beside the amortized ones, labelled.

Methods that change different hooks compose: ``pooling+kl_anneal`` builds a
:class:`CombinedMethod` that routes each hook to the one part that defines it. Two parts
that define the same hook are not orthogonal and cannot be combined.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Mapping

import torch
from torch import nn

from bench.core.errors import BenchError, did_you_mean

if TYPE_CHECKING:  # for type hints only: bench.core.step imports this module, never the reverse at run time
    from bench.core.step import StepContext, StepStatistics

HOOKS = ("encoder_summary", "posterior_mean_layer", "decoder_input", "latent_to_output", "initialise", "kl_weight",
         "kl_penalty", "train_step", "on_epoch_end", "refine_posterior")
COMBINE_SEPARATOR = "+"


@dataclasses.dataclass(frozen=True)
class TrainingClock:
    """Where training is, for schedules: ``step`` (0-based, training batches seen),
    ``steps_per_epoch`` and ``total_steps`` = max_epochs * steps_per_epoch (the planned run)."""

    step: int
    steps_per_epoch: int
    total_steps: int


@dataclasses.dataclass(frozen=True)
class NoSettings:
    """For methods without settings."""


class Method:
    """Default behaviour: the standard VAE of Kingma & Welling 2014 / Bowman et al. 2016."""

    name = "base"
    settings_class: type = NoSettings
    uses_latent = True  # False for a model without z (a language model)
    # True if train_step back-propagates through gradients (create_graph=True; SA-VAE): the
    # model then trains with the plain output layer, whose second derivative costs less.
    differentiates_twice = False

    def __init__(self, settings: Any = None):
        self.settings = settings if settings is not None else self.settings_class()

    # -- model --------------------------------------------------------------------------
    def encoder_summary(self) -> nn.Module | None:
        """Module mapping (states [B, T, H], mask [B, T]) to h(x); None keeps the last state."""
        return None

    def posterior_mean_layer(self, latent_dim: int) -> nn.Module | None:
        """Module applied to the posterior mean [B, latent_dim]; None keeps it as is."""
        return None

    def decoder_input(self) -> nn.Module | None:
        """Module mapping the decoder's input ids [N, T-1] (the start token first) to the ids it
        reads; the targets stay as they are. It sees ``model.training``, so that a change meant
        for training (word dropout) leaves evaluation alone. None reads them as they are."""
        return None

    def latent_to_output(self) -> bool:
        """Whether z also reaches the output layer beside the decoder state: logits = W [h_t; z]."""
        return False

    def initialise(self, model: nn.Module) -> None:
        """Change the model's reference initialisation (called once, after construction)."""

    # -- objective ----------------------------------------------------------------------
    def kl_weight(self, clock: TrainingClock) -> float:
        """Weight of the KL term at training step ``clock.step``."""
        return 1.0

    def kl_penalty(self, kl_per_dim: torch.Tensor) -> torch.Tensor:
        """KL term per sentence [B] from KL per dimension [B, latent_dim]."""
        return kl_per_dim.sum(dim=1)

    # -- optimisation -------------------------------------------------------------------
    def train_step(self, context: "StepContext", batch: torch.Tensor) -> "StepStatistics":
        """One update on ``batch`` through the step context; returns the step's statistics."""
        return context.joint_step(batch)

    def on_epoch_end(self, context: "StepContext", epoch: int, valid: Mapping[str, float]) -> dict[str, Any]:
        """Called after each validation; returns values to record in the epoch's curve."""
        return {}

    # -- evaluation -------------------------------------------------------------------------
    def refine_posterior(self, model: nn.Module, x: torch.Tensor, mu: torch.Tensor,
                         logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Test-time refinement of q(z|x) = N(mu, exp(logvar)); None: the amortized q only."""
        return None

    # -- checkpointing of a method's own training state (e.g. a mode switch) -------------
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


_REGISTRY: dict[str, type[Method]] = {}


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator: make a method available under ``name``."""

    def decorate(cls: type[Method]) -> type[Method]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"method name '{name}' registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def available_methods() -> list[str]:
    _load_builtin_methods()
    return sorted(_REGISTRY)


def _load_builtin_methods() -> None:
    import methods  # noqa: F401  (registers every module in the package)


def method_class(name: str) -> type[Method]:
    _load_builtin_methods()
    if name not in _REGISTRY:
        raise BenchError(f"unknown method '{name}'{did_you_mean(name, _REGISTRY)}; available: {', '.join(sorted(_REGISTRY))} "
                         f"(combine with '{COMBINE_SEPARATOR}', e.g. pooling+kl_anneal)")
    return _REGISTRY[name]


def build_method(spec: str, settings: Mapping[str, Mapping[str, Any]] | None = None,
                 where: str = "settings") -> Method:
    """Build ``spec`` (``vae``, or parts joined by ``+``) with per-method settings.

    ``settings`` maps a method name to its settings; entries for methods not in ``spec``
    are ignored (a profile may hold settings for every method), but an unknown method
    name among them is an error.
    """
    from bench.core.config import from_dict  # local import: config does not depend on methods

    settings = dict(settings or {})
    _load_builtin_methods()
    for name in settings:  # a typo in a settings section is an error, not ignored
        if name not in _REGISTRY:
            from bench.core.config import SECTIONS
            raise BenchError(f"unknown settings section '{name}'{did_you_mean(name, [*SECTIONS, *_REGISTRY])}: a section is one of {', '.join(SECTIONS)} "
                             "or a method name (python -m bench train --list-methods)")
    names = [part.strip() for part in spec.split(COMBINE_SEPARATOR)]
    if len(set(names)) != len(names) or not all(names):
        raise BenchError(f"method '{spec}': name each part once, joined by '{COMBINE_SEPARATOR}'")
    parts = []
    for name in names:
        cls = method_class(name)
        parts.append(cls(from_dict(cls.settings_class, settings.get(name, {}), f"{where} [{name}]")))
    return parts[0] if len(parts) == 1 else CombinedMethod(parts)


def method_settings(method: Method) -> dict[str, dict[str, Any]]:
    """Resolved settings of a method (or of each part of a combination), for records."""
    parts = method.parts if isinstance(method, CombinedMethod) else [method]
    return {part.name: dataclasses.asdict(part.settings) for part in parts}


def changed_hooks(name: str) -> list[str]:
    """The hooks that the method registered as ``name`` (one part, not a combination) overrides:
    none for the standard VAE; ``encoder_summary`` for a method that changes what the encoder reads."""
    cls = method_class(name)
    return [hook for hook in HOOKS if _overrides(cls, hook)]


def _overrides(cls: type[Method], hook: str) -> bool:
    return getattr(cls, hook) is not getattr(Method, hook)


def defines(method: Method, hook: str) -> bool:
    """Whether ``method`` (or, for a combination, one of its parts) overrides ``hook``."""
    parts = method.parts if isinstance(method, CombinedMethod) else [method]
    return any(_overrides(type(part), hook) for part in parts)


class CombinedMethod(Method):
    """Orthogonal methods together: each hook goes to the single part that defines it."""

    def __init__(self, parts: list[Method]):
        super().__init__()
        self.parts = parts
        self.name = COMBINE_SEPARATOR.join(p.name for p in parts)
        if len({p.uses_latent for p in parts}) > 1:
            raise BenchError(f"method '{self.name}': a model without a latent cannot be combined with VAE methods")
        self.uses_latent = parts[0].uses_latent
        self.differentiates_twice = any(p.differentiates_twice for p in parts)
        for hook in HOOKS:
            owners = [p for p in parts if _overrides(type(p), hook)]
            if len(owners) > 1:
                raise BenchError(f"methods {' and '.join(p.name for p in owners)} both change {hook}; "
                                 "they are not orthogonal and cannot be combined")
            if owners:
                setattr(self, hook, getattr(owners[0], hook))

    def state_dict(self) -> dict[str, Any]:
        return {part.name: part.state_dict() for part in self.parts}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for part in self.parts:
            part.load_state_dict(state.get(part.name, {}))
