"""Text read off a model: a collapsed decoder gives one text for every input."""

import subprocess
import sys

import torch

from bench.core.config import ModelConfig
from bench.core.data import Vocabulary
from bench.core.lifecycle import run
from bench.core.model import SequenceVAE
from bench.core.samples import distinct_reconstructions, greedy_decode, text_samples

SENTENCES = [[4, 5, 6], [7, 8], [9, 10, 11, 12], [5, 5], [6, 7, 8]]
VOCAB = Vocabulary([f"w{i}" for i in range(4, 13)])


def model_that_reads_z():
    torch.manual_seed(0)
    model = SequenceVAE(13, ModelConfig(embed_dim=8, encoder_hidden=8, decoder_hidden=8, latent_dim=2,
                                        encoder_init="pytorch"))
    with torch.no_grad():  # a strong path from z to the words, so that the decodings differ
        model.latent_to_cell.weight.normal_(0, 3.0)
        model.output.weight.normal_(0, 3.0)
        model.to_posterior.weight.normal_(0, 3.0)
    return model


def test_a_decoder_that_ignores_z_gives_one_reconstruction_for_every_input():
    model = model_that_reads_z()
    assert distinct_reconstructions(text_samples(model, VOCAB, SENTENCES)) > 1
    with torch.no_grad():  # cut z off: no initial cell state from it, no z beside the inputs
        model.latent_to_cell.weight.zero_()
        model.decoder_lstm.weight_ih_l0[:, -2:].zero_()
    samples = text_samples(model, VOCAB, SENTENCES)
    assert distinct_reconstructions(samples) == 1 and len(set(samples["prior"])) == 1
    assert [r["input"] for r in samples["reconstructions"]][0] == "w4 w5 w6"


def test_greedy_decoding_stops_at_the_end_token_or_the_length_cap():
    model = model_that_reads_z()
    decoded = greedy_decode(model, torch.zeros(3, 2), max_words=4)
    assert all(len(ids) <= 4 and 2 not in ids for ids in decoded)  # 2: the end token, never shown


def test_every_record_carries_its_samples_and_the_command_prints_them(tmp_path, smoke_config):
    record = run(smoke_config("vae"), tmp_path, log=lambda message: None)
    samples = record["samples"]
    assert len(samples["reconstructions"]) == 5 and len(samples["prior"]) == 3 and len(samples["interpolation"]) == 5
    folder = next(tmp_path.rglob("record.json")).parent
    result = subprocess.run([sys.executable, "-m", "bench", "samples", str(folder)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "different reconstructions of 5 sentences" in result.stdout
    missing = subprocess.run([sys.executable, "-m", "bench", "samples", str(tmp_path / "nope")], capture_output=True,
                             text=True, timeout=120)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
