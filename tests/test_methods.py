"""Every method on the shared core, and the behaviour each one promises."""

import math

import pytest
import torch

from bench.data import load_corpus, pad_batch
from bench.errors import BenchError
from bench.method import available_methods, build_method
from bench.model import SequenceVAE
from bench.train import Trainer
from methods.kl_anneal import KLAnnealSettings
from methods.pooling import MaskedPooling
from methods.sa_vae import SAVAESettings, negative_elbo, refine


def make_trainer(smoke_config, method_spec, **settings):
    config = smoke_config(method_spec, **({k: v for k, v in settings.items()}))
    method = build_method(config.method, config.methods)
    corpus = load_corpus(config.dataset, config.data)
    return Trainer(config, method, corpus, torch.device("cpu"), log=lambda message: None)


@pytest.mark.parametrize("name", available_methods())
def test_every_method_trains_and_evaluates(smoke_config, name):
    trainer = make_trainer(smoke_config, name)
    for batch in list(trainer.train_data)[:2]:
        stats = trainer.method.train_step(trainer, batch)
        trainer.step += 1
        assert math.isfinite(stats["loss"]) and stats["sentences"] == batch.size(0)
    result = trainer.test()
    assert all(math.isfinite(result[key]) for key in ("nll", "kl", "mi", "ppl", "elbo_nll"))
    assert result["nll"] <= result["elbo_nll"] + 1.0  # the IW bound is no looser than the ELBO, up to noise


def test_unknown_method_and_setting_are_clear_errors():
    with pytest.raises(BenchError, match="unknown method 'pooing'. Did you mean 'pooling'"):
        build_method("pooing")
    with pytest.raises(BenchError, match=r"\[kl_anneal\]: unknown key 'warmup'"):
        build_method("kl_anneal", {"kl_anneal": {"warmup": 3}})
    with pytest.raises(BenchError, match="kl_start must be in"):
        build_method("kl_anneal", {"kl_anneal": {"kl_start": 2.0}})
    with pytest.raises(BenchError, match="kl_anneal and cyclical both change kl_weight"):
        build_method("kl_anneal+cyclical")
    with pytest.raises(BenchError, match="without a latent"):
        build_method("lm+pooling")


def test_combination_routes_each_hook_to_its_owner():
    combined = build_method("pooling+kl_anneal+free_bits", {"kl_anneal": {"kl_start": 0.5, "warm_up": 1}})
    assert isinstance(combined.encoder_summary(), MaskedPooling)
    assert combined.kl_weight(0, 10) == pytest.approx(0.55)
    kl = torch.tensor([[0.0, 5.0]])
    assert combined.kl_penalty(kl).item() == pytest.approx(5.0)  # dim 0 under the floor of 8/2


def test_kl_anneal_schedule_matches_the_reference():
    method = build_method("kl_anneal")  # kl_start 0.1, warm_up 10 epochs
    steps_per_epoch = 100
    assert method.kl_weight(0, steps_per_epoch) == pytest.approx(0.1 + 0.9 / 1000)
    assert method.kl_weight(499, steps_per_epoch) == pytest.approx(0.1 + 0.9 * 500 / 1000)
    assert method.kl_weight(999, steps_per_epoch) == pytest.approx(1.0)
    assert method.kl_weight(5000, steps_per_epoch) == 1.0
    assert KLAnnealSettings().kl_start == 0.1 and KLAnnealSettings().warm_up == 10


def test_cyclical_schedule_resets_each_cycle_and_holds():
    method = build_method("cyclical", {"cyclical": {"cycle_epochs": 2, "ramp_fraction": 0.5, "kl_start": 0.0}})
    per_epoch = 10  # cycle = 20 steps: ramp over 10 steps, hold for 10
    weights = [method.kl_weight(step, per_epoch) for step in range(45)]
    assert weights[0] == pytest.approx(0.1) and weights[4] == pytest.approx(0.5)
    assert weights[9] == 1.0 and weights[15] == 1.0
    assert weights[20] == pytest.approx(0.1) and weights[24] == pytest.approx(0.5)  # reset
    assert weights[40] == pytest.approx(0.1)


def test_beta_vae_weight_is_fixed():
    method = build_method("beta_vae", {"beta_vae": {"beta": 0.2}})
    assert {method.kl_weight(step, 7) for step in (0, 10, 10_000)} == {0.2}


@pytest.mark.parametrize("per_dimension", [True, False])
def test_free_bits_gives_no_gradient_below_the_floor(per_dimension):
    method = build_method("free_bits", {"free_bits": {"target": 4.0, "per_dimension": per_dimension}})
    kl = torch.tensor([[0.5, 3.0], [0.7, 2.6]], requires_grad=True)  # mean per dim 0.6, 2.8; total 3.4
    method.kl_penalty(kl).sum().backward()
    if per_dimension:  # floor 2 per dim: dim 0 is free, dim 1 pays
        assert kl.grad[:, 0].abs().sum() == 0 and (kl.grad[:, 1] == 1).all()
    else:  # total 3.4 < 4: all free
        assert kl.grad.abs().sum() == 0
    kl_high = torch.tensor([[3.0, 3.0]], requires_grad=True)
    method.kl_penalty(kl_high).sum().backward()
    assert (kl_high.grad == 1).all()


def test_bn_vae_scale_stays_fixed(smoke_config):
    trainer = make_trainer(smoke_config, "bn_vae", bn_vae={"gamma": 0.7})
    layer = trainer.model.mean_layer
    for batch in list(trainer.train_data)[:3]:
        trainer.method.train_step(trainer, batch)
    assert torch.all(layer.weight == 0.7) and not layer.weight.requires_grad
    assert layer.bias.abs().sum() > 0  # the bias is learned
    with torch.no_grad():  # in training mode the mean's spread across the batch is gamma (plus BN's eps)
        normalised = layer(3.0 * torch.randn(500, layer.num_features) + 2.0)
    assert float(normalised.std(0, unbiased=False).mean()) == pytest.approx(0.7, rel=1e-3)  # batch-normalised mean, scale gamma


def snapshot(params):
    return [p.detach().clone() for p in params]


def test_aggressive_inner_phase_updates_the_encoder_only(smoke_config):
    trainer = make_trainer(smoke_config, "aggressive", aggressive={"max_inner_steps": 5, "check_every": 2})
    batch = next(iter(trainer.train_data))
    encoder_before = snapshot(trainer.model.encoder_parameters())
    decoder_before = snapshot(trainer.model.decoder_parameters())
    trainer.encoder_step(batch)
    assert all(torch.equal(a, b) for a, b in zip(decoder_before, trainer.model.decoder_parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(encoder_before, trainer.model.encoder_parameters()))
    # a whole aggressive step: inner encoder steps, then one decoder-only step
    calls = []
    trainer.encoder_step = lambda b: calls.append("enc") or Trainer.encoder_step(trainer, b)
    trainer.decoder_step = lambda b: calls.append("dec") or Trainer.decoder_step(trainer, b)
    trainer.method.train_step(trainer, batch)
    assert calls[-1] == "dec" and calls.count("dec") == 1 and 2 <= calls.count("enc") <= 5


def test_aggressive_mode_switches_off_when_validation_mi_drops(smoke_config):
    trainer = make_trainer(smoke_config, "aggressive")
    method = trainer.method
    method.on_epoch_end(trainer, 1, {"mi": 0.5})
    method.on_epoch_end(trainer, 2, {"mi": 0.8})
    assert method.aggressive
    method.on_epoch_end(trainer, 3, {"mi": 0.6})
    assert not method.aggressive
    method.on_epoch_end(trainer, 4, {"mi": 2.0})
    assert not method.aggressive  # off for good
    calls = []
    trainer.joint_step = lambda b: calls.append("joint") or Trainer.joint_step(trainer, b)
    method.train_step(trainer, next(iter(trainer.train_data)))
    assert calls == ["joint"]


@pytest.mark.parametrize("kind", ["max", "mean", "max_mean"])
def test_pooling_ignores_padding(kind):
    from bench.config import ModelConfig
    torch.manual_seed(0)
    model = SequenceVAE(20, ModelConfig(embed_dim=6, encoder_hidden=5, decoder_hidden=5, latent_dim=2),
                        summary=MaskedPooling(kind))
    for p in model.parameters():
        torch.nn.init.normal_(p)
    # negative states everywhere would make a zero pad win a max; check padding never does
    sentences = [[4, 5, 6, 7, 8, 9], [10, 11], [12]]
    batched = model.encoder_features(pad_batch(sentences))
    for row, sentence in enumerate(sentences):
        alone = model.encoder_features(pad_batch([sentence]))
        torch.testing.assert_close(batched[row], alone[0])


def test_max_pooling_of_negative_states_is_not_zero_from_padding():
    states = torch.tensor([[[-1.0], [-2.0], [0.0]]])  # last position is padding
    mask = torch.tensor([[True, True, False]])
    assert MaskedPooling("max")(states, mask).item() == -1.0
    assert MaskedPooling("mean")(states, mask).item() == -1.5


def test_sa_vae_refinement_does_not_lower_the_elbo(smoke_config):
    trainer = make_trainer(smoke_config, "sa_vae")
    model = trainer.model
    for batch in list(trainer.train_data)[:3]:  # a slightly trained model, not the init
        trainer.method.train_step(trainer, batch)
    model.eval()
    batch = next(iter(trainer.train_data))
    mu, logvar = model.encode(batch)
    refined = refine(model, batch, mu, logvar, SAVAESettings(svi_steps=20, svi_lr=0.5))

    def elbo(m, lv):
        with torch.no_grad():
            return -torch.stack([negative_elbo(model, batch, m, lv)[0] for _ in range(200)]).mean(0)

    before, after = elbo(mu, logvar), elbo(*refined)
    assert after.mean() >= before.mean()
    assert (after >= before - 0.05).float().mean() > 0.9
