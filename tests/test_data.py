"""Data loading, vocabulary, batching and the synthetic corpus."""

import pytest
import torch

from bench.core.config import DataConfig
from bench.core.data import (BOS_ID, EOS_ID, PAD_ID, UNK_ID, BatchedSplit, Vocabulary, load_corpus, pad_batch,
                             require_one_batch)
from bench.core.errors import BenchError


def write_dataset(root, name, lines_by_split):
    folder = root / name
    folder.mkdir(parents=True)
    for split, lines in lines_by_split.items():
        (folder / f"{split}.txt").write_text("".join(line + "\n" for line in lines))
    return folder


def test_vocabulary_from_train_only_with_cap_and_unknowns():
    vocab = Vocabulary.build([["a", "b", "a", "_UNK"], ["c", "a", "b"]], max_size=6, unknown_tokens=("_UNK",))
    assert vocab.itos[:4] == ["<pad>", "<s>", "</s>", "<unk>"]
    assert vocab.itos[4:] == ["a", "b"]  # most frequent first; the cap of 6 drops "c"
    assert vocab.encode(["a", "c", "_UNK", "zzz"]) == [4, UNK_ID, UNK_ID, UNK_ID]


def test_load_folder_strips_labels_and_applies_reductions(tmp_path):
    write_dataset(tmp_path, "yelp_xu_resplit", {
        "train": ["3 good food here", "0 bad", "4 great great place to eat"],
        "valid": ["2 food ok"], "test": ["1 meh place"]})
    corpus = load_corpus("yelp_xu_resplit", DataConfig(max_length=3, max_train_sentences=2), tmp_path)
    assert [corpus.vocab.decode(s) for s in corpus.splits["train"]] == [["good", "food", "here"], ["bad"]]
    assert corpus.vocab.decode(corpus.splits["valid"][0]) == ["food", "<unk>"]  # "ok" not in train
    assert corpus.num_words("train") == 3 + 1 + 1 + 1  # words plus one end token each


def test_tab_labels_for_yelp(tmp_path):
    write_dataset(tmp_path, "yelp", {"train": ["5\tnice one"], "valid": ["1\tnice"], "test": ["2\tone"]})
    assert load_corpus("yelp", DataConfig(), tmp_path).splits["train"] == [[4, 5]]


@pytest.mark.parametrize("case, expected", [
    ("no_dir", "needs a data directory"),
    ("no_folder", "dataset folder"),
    ("no_split", "split 'train.txt' is missing"),
    ("empty", "is empty"),
    ("binary", "not UTF-8"),
    ("one_sentence", "the training split has 1 sentences, fewer than one batch (32); use a larger dataset"),
])
def test_bad_data_gives_one_line_naming_the_file(tmp_path, monkeypatch, case, expected):
    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)
    folder = tmp_path / "yahoo"
    if case != "no_folder" and case != "no_dir":
        folder.mkdir()
        for split in ("valid", "test"):
            (folder / f"{split}.txt").write_text("a b\n")
        if case == "empty":
            (folder / "train.txt").write_text("\n\n")
        if case == "binary":
            (folder / "train.txt").write_bytes(b"ok line\n\xff\xfe bad\n")
        if case == "one_sentence":
            (folder / "train.txt").write_text("a b\n")
    with pytest.raises(BenchError) as err:
        corpus = load_corpus("yahoo", DataConfig(), None if case == "no_dir" else tmp_path)
        require_one_batch(corpus, DataConfig().batch_size)
    message = str(err.value)
    assert expected in message and "\n" not in message
    if case in ("no_split", "empty", "binary", "one_sentence"):
        assert str(folder) in message
    if case == "binary":
        assert "train.txt:2" in message
    if case == "no_split":
        assert "python -m bench download download yahoo" in message


def test_batches_group_by_length_and_cover_every_sentence_once():
    sentences = [[4] * n for n in (5, 1, 3, 5, 2, 1, 4, 3)]
    split = BatchedSplit(sentences, batch_size=2)
    lengths = []
    for batch in split:
        assert batch[:, 0].eq(BOS_ID).all()
        real = (batch != PAD_ID).sum(1) - 2
        assert real.max() - real.min() <= 1  # sorted by length: neighbours are similar
        lengths += real.tolist()
    assert sorted(lengths) == sorted(len(s) for s in sentences)
    order_a = [b.tolist() for b in split.shuffled(torch.Generator().manual_seed(1))]
    order_b = [b.tolist() for b in split.shuffled(torch.Generator().manual_seed(2))]
    assert sorted(map(str, order_a)) == sorted(map(str, order_b)) and order_a != order_b


def test_pad_batch_layout():
    batch = pad_batch([[7, 8], [9]])
    assert batch.tolist() == [[BOS_ID, 7, 8, EOS_ID], [BOS_ID, 9, EOS_ID, PAD_ID]]


def test_synthetic_is_deterministic_and_needs_no_files(monkeypatch):
    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)
    config = DataConfig(synthetic_vocab=30, synthetic_length=6, synthetic_train=50, synthetic_valid=10,
                        synthetic_test=10)
    first, second = load_corpus("synthetic", config), load_corpus("synthetic", config)
    assert first.splits == second.splits
    assert all(len(s) == 6 for s in first.splits["train"])
    other = load_corpus("synthetic", DataConfig(**{**config.__dict__, "synthetic_seed": 1}))
    assert other.splits != first.splits


def test_synthetic_follows_he_et_al_recipe():
    """10 tokens, the first uniform over 1,000 words, the rest from a peaked z-driven LSTM."""
    import collections
    import math
    config = DataConfig(synthetic_train=2000, synthetic_valid=10, synthetic_test=10)
    train = load_corpus("synthetic", config).splits["train"]
    assert len(train) == 2000 and all(len(s) == 10 for s in train)
    first = {s[0] for s in train}
    assert len(first) > 800  # uniform over 1,000 words: ~865 distinct in 2,000 draws
    later = collections.Counter(w for s in train for w in s[1:])
    total = sum(later.values())
    entropy = -sum(c / total * math.log(c / total) for c in later.values())
    assert entropy < math.log(1000) - 1  # far from uniform
