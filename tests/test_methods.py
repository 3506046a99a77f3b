"""Every method on the shared core, and the behaviour each one promises."""

import math

import pytest
import torch

from bench.core.data import load_corpus, pad_batch
from bench.core.errors import BenchError
from bench.core.method import available_methods, build_method
from bench.core.model import ModelHooks, SequenceVAE
from bench.core.loop import Trainer
from bench.core.step import StepContext
from methods.kl_anneal import KLAnnealSettings
from methods.pooling import MaskedPooling
from bench.core.method import TrainingClock
from methods.sa_vae import SAVAESettings, clip_whole, refine


def make_trainer(smoke_config, method_spec, **settings):
    config = smoke_config(method_spec, **({k: v for k, v in settings.items()}))
    method = build_method(config.method, config.methods)
    corpus = load_corpus(config.dataset, config.data)
    return Trainer(config, method, corpus, torch.device("cpu"), log=lambda message: None)


@pytest.mark.parametrize("name", available_methods())
def test_every_method_trains_and_evaluates(smoke_config, name):
    trainer = make_trainer(smoke_config, name)
    for batch in list(trainer.train_data)[:2]:
        stats = trainer.step_once(batch)
        assert math.isfinite(stats["loss"]) and stats["sentences"] == batch.size(0)
    result = trainer.test()
    assert all(math.isfinite(result[key]) for key in ("nll", "kl", "mi", "ppl", "elbo_nll"))
    assert result["nll"] <= result["elbo_nll"] + 1.0  # the IW bound is no looser than the ELBO, up to noise


def test_unknown_method_and_setting_are_clear_errors():
    with pytest.raises(BenchError, match="unknown method 'pooing' .did you mean 'pooling'"):
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
    assert combined.kl_weight(TrainingClock(0, 10, 100)) == pytest.approx(0.55)
    kl = torch.tensor([[0.0, 5.0]])
    assert combined.kl_penalty(kl).item() == pytest.approx(5.0)  # dim 0 under the floor of 8/2


def clock(step, per_epoch=100, epochs=100):
    return TrainingClock(step, per_epoch, per_epoch * epochs)


def test_kl_anneal_schedule_matches_the_reference():
    method = build_method("kl_anneal")  # kl_start 0.1, warm_up 10 epochs
    assert method.kl_weight(clock(0)) == pytest.approx(0.1 + 0.9 / 1000)
    assert method.kl_weight(clock(499)) == pytest.approx(0.1 + 0.9 * 500 / 1000)
    assert method.kl_weight(clock(999)) == pytest.approx(1.0)
    assert method.kl_weight(clock(5000)) == 1.0
    assert KLAnnealSettings().kl_start == 0.1 and KLAnnealSettings().warm_up == 10


def test_cyclical_schedule_has_four_cycles_over_the_run():
    method = build_method("cyclical")  # Fu et al.: M = 4, R = 0.5
    total = 400  # 4 cycles of 100 steps: rise over 50, hold for 50
    weights = [method.kl_weight(TrainingClock(step, 10, total)) for step in range(total)]
    assert weights[0] == 0.0 and weights[25] == pytest.approx(0.5) and weights[50] == 1.0 and weights[99] == 1.0
    assert weights[100] == 0.0 and weights[125] == pytest.approx(0.5)
    assert weights[300] == 0.0 and weights[399] == 1.0
    assert sum(1 for w in weights if w == 0.0) == 4  # one restart per cycle
    odd = [method.kl_weight(TrainingClock(step, 10, 10)) for step in range(10)]  # T/M = 2.5 -> cycles of 3 steps
    assert odd[:4] == pytest.approx([0.0, 0.8, 1.0, 0.0])


def test_beta_vae_weight_is_fixed():
    method = build_method("beta_vae", {"beta_vae": {"beta": 0.2}})
    assert {method.kl_weight(clock(step)) for step in (0, 10, 10_000)} == {0.2}


def test_free_bits_li_masks_each_sentence_and_dimension():
    method = build_method("free_bits", {"free_bits": {"target": 4.0}})  # floor 2 nats per dimension
    kl = torch.tensor([[0.5, 3.0], [2.5, 1.0]], requires_grad=True)
    penalty = method.kl_penalty(kl)
    assert penalty.tolist() == pytest.approx([3.0, 2.5])
    penalty.sum().backward()
    assert kl.grad.tolist() == [[0.0, 1.0], [1.0, 0.0]]


def test_free_bits_kingma_masks_on_the_batch_mean():
    method = build_method("free_bits", {"free_bits": {"target": 4.0, "variant": "kingma"}})
    kl = torch.tensor([[0.5, 3.0], [0.7, 1.6]], requires_grad=True)  # batch mean per dim 0.6, 2.3
    method.kl_penalty(kl).sum().backward()
    assert kl.grad[:, 0].abs().sum() == 0 and (kl.grad[:, 1] == 1).all()  # dim 1 pays even for the 1.6-nat sentence


def test_free_bits_sentence_masks_each_sentence_on_its_total_kl():
    """Bosc & Vincent's --fb 1: a sentence below the target pays no KL at all, one above pays it all."""
    method = build_method("free_bits", {"free_bits": {"target": 2.0, "variant": "sentence"}})
    kl = torch.tensor([[0.5, 1.0], [1.5, 1.0]], requires_grad=True)  # totals 1.5 (free) and 2.5 (pays)
    penalty = method.kl_penalty(kl)
    assert penalty.tolist() == pytest.approx([0.0, 2.5])
    penalty.sum().backward()
    assert kl.grad.tolist() == [[0.0, 0.0], [1.0, 1.0]]


def test_pretrain_fb_trains_an_autoencoder_then_resets_the_decoder(smoke_config):
    trainer = make_trainer(smoke_config, "pretrain_fb", pretrain_fb={"pretrain_epochs": 1, "warm_up": 1})
    method, per_epoch = trainer.method, len(trainer.train_data)
    assert method.kl_weight(TrainingClock(per_epoch - 1, per_epoch, 10 * per_epoch)) == 0.0
    assert method.kl_weight(TrainingClock(per_epoch, per_epoch, 10 * per_epoch)) == pytest.approx(1 / per_epoch)
    for batch in trainer.train_data:
        method.train_step(trainer.context, batch)
    encoder_before = snapshot(trainer.model.encoder_parameters())
    decoder_before = snapshot(trainer.model.decoder_parameters())
    method.on_epoch_end(trainer.context, 1, {"mi": 0.0})
    assert all(torch.equal(a, b) for a, b in zip(encoder_before, trainer.model.encoder_parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(decoder_before, trainer.model.decoder_parameters()))
    assert max(float(p.detach().abs().max()) for p in trainer.model.decoder_parameters()) <= 0.1  # reference init again
    assert trainer.best_loss == math.inf and not method.pretraining


def test_bn_vae_scale_stays_fixed(smoke_config):
    trainer = make_trainer(smoke_config, "bn_vae", bn_vae={"gamma": 0.7})
    layer = trainer.model.mean_layer
    for batch in list(trainer.train_data)[:3]:
        trainer.step_once(batch)
    assert torch.all(layer.weight == 0.7) and not layer.weight.requires_grad
    assert layer.bias.abs().sum() > 0  # the bias is learned
    with torch.no_grad():  # in training mode the mean's spread across the batch is gamma (plus BN's eps)
        normalised = layer(3.0 * torch.randn(500, layer.num_features) + 2.0)
    assert float(normalised.std(0, unbiased=False).mean()) == pytest.approx(0.7, rel=1e-3)  # batch-normalised mean, scale gamma


def test_bn_vae_normalised_means_are_active_at_initialisation(smoke_config):
    from bench.core.metrics import active_units
    trainer = make_trainer(smoke_config, "bn_vae")
    x = pad_batch(trainer.corpus.splits["train"][:128])
    with torch.no_grad():  # training mode: batch statistics, as in training
        mu, _ = trainer.model.encode(x)
    assert active_units(mu) == trainer.model.latent_dim
    # the reason: the encoder keeps PyTorch's default initialisation, so mu varies far above BN's eps
    raw = trainer.model.to_posterior(trainer.model.encoder_features(x)).chunk(2, -1)[0]
    assert float(raw.detach().var(0).min()) > 10 * trainer.model.mean_layer.eps


def test_bn_vae_accepts_a_training_batch_of_one_sentence(smoke_config):
    trainer = make_trainer(smoke_config, "bn_vae")
    stats = trainer.step_once(pad_batch(trainer.corpus.splits["train"][:1]))
    assert math.isfinite(stats["loss"])


def snapshot(params):
    return [p.detach().clone() for p in params]


def test_aggressive_inner_phase_updates_the_encoder_only(smoke_config):
    trainer = make_trainer(smoke_config, "aggressive", aggressive={"max_inner_steps": 5, "check_every": 2})
    batch = next(iter(trainer.train_data))
    encoder_before = snapshot(trainer.model.encoder_parameters())
    decoder_before = snapshot(trainer.model.decoder_parameters())
    trainer.context.encoder_step(batch)
    assert all(torch.equal(a, b) for a, b in zip(decoder_before, trainer.model.decoder_parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(encoder_before, trainer.model.encoder_parameters()))
    # a whole aggressive step: inner encoder steps, then one decoder-only step
    calls = []
    trainer.context.encoder_step = lambda b: calls.append("enc") or StepContext.encoder_step(trainer.context, b)
    trainer.context.decoder_step = lambda b: calls.append("dec") or StepContext.decoder_step(trainer.context, b)
    trainer.step_once(batch)
    assert calls[-1] == "dec" and calls.count("dec") == 1 and 2 <= calls.count("enc") <= 5


def test_aggressive_mode_switches_off_when_validation_mi_drops(smoke_config):
    trainer = make_trainer(smoke_config, "aggressive")
    method = trainer.method
    assert method.previous_mi == 0.0  # text.py starts from 0 (toy.py: -1, a setting)
    measured = iter([0.5, 0.8, 0.6, 2.0])
    trainer.context.validation_mi = lambda: next(measured)
    method.on_epoch_end(trainer.context, 1, {"mi": 9.0})  # the rule reads the training-batch-size MI, not valid["mi"]
    method.on_epoch_end(trainer.context, 2, {"mi": 9.0})
    assert method.aggressive
    method.on_epoch_end(trainer.context, 3, {"mi": 9.0})
    assert not method.aggressive
    method.on_epoch_end(trainer.context, 4, {"mi": 9.0})
    assert not method.aggressive  # off for good
    calls = []
    trainer.context.joint_step = lambda b: calls.append("joint") or StepContext.joint_step(trainer.context, b)
    method.train_step(trainer.context, next(iter(trainer.train_data)))
    assert calls == ["joint"]


def test_aggressive_settings_must_let_the_stopping_rule_act():
    with pytest.raises(BenchError, match=r"max_inner_steps must exceed 2 \* check_every"):
        build_method("aggressive", {"aggressive": {"max_inner_steps": 10, "check_every": 5}})
    assert build_method("aggressive").settings.max_inner_steps == 99  # `while sub_iter < 100`, from 1


def test_aggressive_inner_loop_stops_when_the_loss_per_word_rises(smoke_config):
    trainer = make_trainer(smoke_config, "aggressive", aggressive={"max_inner_steps": 30, "check_every": 5})
    losses = iter([1.0] * 5 + [0.9] * 5 + [0.95] * 5 + [0.1] * 100)  # per word: check 1 vs inf, 2 falls, 3 rises
    steps = []

    def fake_encoder_step(batch):
        steps.append(1)
        return {"loss": next(losses) * 10, "words": 10}

    trainer.context.encoder_step = fake_encoder_step
    trainer.context.decoder_step = lambda batch: {"decoder": 1}
    trainer.step_once(next(iter(trainer.train_data)))
    assert len(steps) == 15


@pytest.mark.parametrize("kind", ["max", "mean", "max_mean"])
def test_pooling_ignores_padding(kind):
    from bench.core.config import ModelConfig
    torch.manual_seed(0)
    model = SequenceVAE(20, ModelConfig(embed_dim=6, encoder_hidden=5, decoder_hidden=5, latent_dim=2),
                        hooks=ModelHooks(summary=MaskedPooling(kind)))
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
    trainer = make_trainer(smoke_config, "sa_vae", sa_vae={"svi_steps": 2})
    model = trainer.model
    for batch in list(trainer.train_data)[:3]:  # a slightly trained model, not the init
        trainer.step_once(batch)
    model.eval()
    batch = next(iter(trainer.train_data))
    mu, logvar = model.encode(batch)
    # batch-mean objective: lr = batch size gives each sentence a unit step size
    settings = SAVAESettings(svi_steps=10, svi_lr=float(batch.size(0)))
    with torch.enable_grad():
        refined = refine(model, batch, mu, logvar, settings, trainer.context.sentence_objective)

    def elbo(m, lv):
        torch.manual_seed(0)  # the same noise for both: the difference is not Monte-Carlo error
        with torch.no_grad():
            return -torch.stack([(lambda o: o.reconstruction_nll + o.kl)(model.elbo_terms(batch, m, lv))
                                 for _ in range(200)]).mean(0)

    before, after = elbo(mu, logvar), elbo(*refined)
    assert after.mean() >= before.mean()


def test_sa_vae_svi_step_is_kims_batch_mean_update():
    """One SVI step on a known objective: lambda - lr * clip(grad of the batch *mean*), the whole
    [B, nz] gradient clipped at once; so a sentence's step is lr / B times its own gradient."""
    def quadratic(model, x, mu, logvar):  # per sentence: 0.5 ||mu - 3||^2 + 0.5 ||logvar||^2
        return 0.5 * ((mu - 3.0) ** 2).sum(1) + 0.5 * (logvar ** 2).sum(1)

    settings = SAVAESettings(svi_steps=1, svi_lr=1.0, svi_max_grad_norm=100.0)
    for batch in (2, 8):
        mu, logvar = torch.zeros(batch, 4), torch.ones(batch, 4)
        new_mu, new_logvar = refine(None, None, mu, logvar, settings, quadratic)
        torch.testing.assert_close(new_mu, torch.full((batch, 4), 3.0 / batch))
        torch.testing.assert_close(new_logvar, torch.full((batch, 4), 1 - 1.0 / batch))
    clipped = clip_whole(torch.full((4, 3), 10.0), 5.0)  # norm 20*sqrt(3) -> 5 over the whole tensor
    assert float(clipped.norm()) == pytest.approx(5.0, rel=1e-5) and torch.allclose(clipped, clipped[0, 0])


def test_sa_vae_trains_the_decoder_through_the_svi_trajectory(smoke_config):
    """The decoder's gradient includes the path through the refined posterior (Kim et al.'s
    Hessian-vector terms), not only the ELBO at a fixed refined point."""
    trainer = make_trainer(smoke_config, "sa_vae", sa_vae={"svi_steps": 2})
    model, batch = trainer.model, next(iter(trainer.train_data))

    def decoder_grad(through_trajectory):
        torch.manual_seed(0)
        model.zero_grad()
        mu, logvar = refine(model, batch, *model.encode(batch), trainer.method.settings,
                            trainer.context.sentence_objective, create_graph=True)
        if not through_trajectory:
            mu, logvar = mu.detach(), logvar.detach()
        torch.manual_seed(1)
        trainer.context.objective(batch, mu, logvar)[0].backward()
        return torch.cat([p.grad.flatten() for p in model.decoder_parameters()])

    assert not torch.allclose(decoder_grad(True), decoder_grad(False))


def test_sa_vae_records_refined_test_metrics_beside_the_amortized_ones(smoke_config):
    trainer = make_trainer(smoke_config, "sa_vae", sa_vae={"svi_steps": 2})
    refined = trainer.test_refined()
    assert refined is not None and math.isfinite(refined["nll"])
    assert make_trainer(smoke_config, "vae").test_refined() is None


def test_word_dropout_corrupts_what_the_decoder_reads_while_training_only(smoke_config):
    from methods.word_dropout import WordDropout
    from bench.core.data import BOS_ID, PAD_ID, UNK_ID
    torch.manual_seed(0)
    ids = torch.randint(4, 50, (200, 12))
    ids[:, 0], ids[:100, 8:] = BOS_ID, PAD_ID
    dropout = WordDropout(0.25).train()
    read = dropout(ids)
    words = (ids != BOS_ID) & (ids != PAD_ID)
    replaced = (read != ids)
    assert (read[replaced] == UNK_ID).all() and not replaced[~words].any()  # start token and padding kept
    assert 0.22 < replaced[words].float().mean() < 0.28  # the rate, over 1,600 words
    assert torch.equal(dropout.eval()(ids), ids) and torch.equal(WordDropout(0.0).train()(ids), ids)
    # in the model: training reads corrupted inputs, evaluation the true ones, and the targets never change
    vae, dropped = (make_trainer(smoke_config, name).model for name in ("vae", "word_dropout"))
    for parameter in vae.parameters():  # far from the near-uniform initial model, so inputs matter
        torch.nn.init.normal_(parameter)
    dropped.load_state_dict(vae.state_dict())  # same parameters (word dropout adds none)
    x = next(iter(make_trainer(smoke_config, "vae").test_data))
    z = torch.zeros(x.size(0), 1, vae.latent_dim)
    vae.eval(), dropped.eval()
    assert torch.equal(vae.log_px_given_z(x, z), dropped.log_px_given_z(x, z))
    dropped.decoder_input.rate = 1.0
    dropped.decoder_input.train()
    assert not torch.allclose(vae.log_px_given_z(x, z), dropped.log_px_given_z(x, z))


def test_skip_vae_connects_z_to_the_output_layer(smoke_config):
    vae, skip = (make_trainer(smoke_config, name).model.eval() for name in ("vae", "skip_vae"))
    hidden, latent = skip.config.decoder_hidden, skip.latent_dim
    assert skip.output.weight.shape == (skip.vocab_size, hidden + latent)
    assert vae.output.weight.shape == (vae.vocab_size, hidden)
    x = next(iter(make_trainer(smoke_config, "vae").test_data))
    z = torch.randn(x.size(0), 1, latent)
    with torch.no_grad():
        for model in (vae, skip):  # cut every other path from z: its cell state and its LSTM input
            model.latent_to_cell.weight.zero_()
            model.decoder_lstm.weight_ih_l0[:, -latent:].zero_()
    changes = [not torch.allclose(m.log_px_given_z(x, z), m.log_px_given_z(x, 2 * z + 1)) for m in (vae, skip)]
    assert changes == [False, True]  # only the skip connection still carries z


@pytest.mark.parametrize("combination", ["word_dropout+bn_vae", "word_dropout+kl_anneal", "skip_vae+kl_anneal"])
def test_decoder_side_methods_combine_with_others(smoke_config, combination):
    trainer = make_trainer(smoke_config, combination)
    assert isinstance(trainer.model.decoder_input, torch.nn.Module) == combination.startswith("word_dropout")
    for batch in list(trainer.train_data)[:2]:
        assert math.isfinite(trainer.step_once(batch)["loss"])
    assert math.isfinite(trainer.test()["nll"])


def test_a_step_starts_from_zeroed_gradients_whatever_the_method_left(smoke_config):
    """A train_step that forgets to zero gradients (or leaves some from its own work) still
    steps on this batch's gradient alone: step_on zeroes them before back-propagating."""
    batch = next(iter(make_trainer(smoke_config, "vae").train_data))
    clean, dirty = make_trainer(smoke_config, "vae"), make_trainer(smoke_config, "vae")
    for parameter in dirty.model.parameters():
        parameter.grad = torch.full_like(parameter, 100.0)  # stale gradients from elsewhere
    for trainer in (clean, dirty):
        torch.manual_seed(0)  # the same z sample and dropout masks in both
        trainer.context.step_on(*trainer.context.objective(batch), batch)
    for a, b in zip(clean.model.parameters(), dirty.model.parameters()):
        assert torch.equal(a, b)
