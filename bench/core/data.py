"""Datasets, vocabulary and length-grouped batching.

A dataset is a folder holding ``train.txt``, ``valid.txt`` and ``test.txt`` (one
sentence or document per line, already tokenised, words separated by spaces) under a
data directory given by ``--data-dir`` or the ``BENCH_DATA_DIR`` environment variable.
``synthetic`` is built in (see :mod:`bench.core.synthetic`) and needs no files.

Batching follows the reference implementation of He et al. 2019
(github.com/jxhe/vae-lagging-encoder, ``data/text_data.py``): sentences are sorted by
length and cut into batches of consecutive sentences, so a batch holds sentences of
(nearly) one length and little padding; the order of batches is shuffled every epoch.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch

from bench.core.config import DataConfig
from bench.core.errors import BenchError

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)
SPLITS = ("train", "valid", "test")
DATA_DIR_ENV = "BENCH_DATA_DIR"
SYNTHETIC = "synthetic"


@dataclass(frozen=True)
class DatasetInfo:
    """How to read a named dataset's lines, and where to get it."""

    label_separator: str | None = None  # lines start with a class label ending at this separator
    unknown_tokens: tuple[str, ...] = ("_UNK", "<unk>")  # the corpus's own spelling of unknown
    how_to_get: str = "put train.txt, valid.txt and test.txt in that folder"
    description: str = ""


DATASETS: dict[str, DatasetInfo] = {
    "yahoo": DatasetInfo(how_to_get="run `python -m bench download download yahoo`, or use yahoo_resplit",
                         description="Yahoo Answers, Yang et al. 2017 (100k/10k/10k, 20k vocabulary)"),
    "yelp": DatasetInfo(label_separator="\t",
                        how_to_get="run `python -m bench download download yelp`, or use yelp_xu_resplit",
                        description="Yelp15 reviews, Yang et al. 2017 (100k/10k/10k, label TAB text)"),
    "ptb": DatasetInfo(description="Penn Treebank, Mikolov's preprocessing"),
    "yahoo_resplit": DatasetInfo(description="official Yahoo valid/test re-split 10k/5k/5k (not comparable to yahoo)"),
    "yelp_xu": DatasetInfo(label_separator=" ", description="Yelp 2013 as in Xu & Durrett 2018 (label SPACE text)"),
    "yelp_xu_resplit": DatasetInfo(label_separator=" ",
                                   description="Xu et al. Yelp valid/test re-split (not comparable to yelp)"),
}


def dataset_info(name: str) -> DatasetInfo:
    return DATASETS.get(name, DatasetInfo())


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """The data directory from the flag, else ``$BENCH_DATA_DIR``, else None."""
    chosen = data_dir or os.environ.get(DATA_DIR_ENV)
    return Path(chosen).expanduser().resolve() if chosen else None


class Vocabulary:
    """Word <-> id map built from the training split only.

    Ids 0-3 are pad, start, end and unknown. Words are ordered by training frequency
    (ties alphabetically) so a cap keeps the most frequent; the corpus's own unknown
    token (``_UNK`` or ``<unk>``) is folded into ours.
    """

    def __init__(self, words: Sequence[str]):
        self.itos = list(SPECIAL_TOKENS) + [w for w in words if w not in SPECIAL_TOKENS]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def build(cls, sentences: Sequence[Sequence[str]], max_size: int | None = None,
              unknown_tokens: Sequence[str] = ()) -> "Vocabulary":
        counts = Counter(w for sentence in sentences for w in sentence)
        for token in unknown_tokens:
            counts.pop(token, None)
        words = sorted(counts, key=lambda w: (-counts[w], w))
        if max_size is not None:
            words = words[: max(0, max_size - len(SPECIAL_TOKENS))]
        return cls(words)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, sentence: Sequence[str]) -> list[int]:
        return [self.stoi.get(w, UNK_ID) for w in sentence]

    def decode(self, ids: Sequence[int]) -> list[str]:
        return [self.itos[i] for i in ids if i not in (PAD_ID, BOS_ID, EOS_ID)]


@dataclass
class Corpus:
    """Token ids per split (no start/end tokens; batches add them)."""

    name: str
    vocab: Vocabulary
    splits: dict[str, list[list[int]]]
    source: str  # folder read, or "built-in synthetic"
    truncated: int = 0  # sentences cut to max_length
    # the whole test split (``max_eval_sentences`` does not cut it; ``max_length`` does): the
    # encoder's statistics (KL, MI, AU) are taken over it. None: the same as splits["test"]
    whole_test: list[list[int]] | None = None

    @property
    def full_test(self) -> list[list[int]]:
        return self.splits["test"] if self.whole_test is None else self.whole_test

    def num_words(self, split: str) -> int:
        """Predicted tokens in a split: the words plus one end token per sentence."""
        return sum(len(s) + 1 for s in self.splits[split])

    def summary(self) -> dict:
        return {"name": self.name, "source": self.source, "vocab_size": len(self.vocab),
                "truncated_sentences": self.truncated,
                **{f"{split}_sentences": len(self.splits[split]) for split in SPLITS},
                **{f"{split}_words": self.num_words(split) for split in SPLITS}}


def read_split(path: Path, label_separator: str | None) -> list[list[str]]:
    """Read one split: a list of token lists. Bad files raise one-line BenchErrors."""
    if not path.is_file():
        raise FileNotFoundError(path)
    sentences = []
    with open(path, "rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise BenchError(f"{path}:{line_number}: not UTF-8 text ({err.reason} at byte {err.start}); "
                                 "re-encode the file as UTF-8") from None
            if label_separator is not None:
                label, sep, line = line.partition(label_separator)
                if not sep:
                    raise BenchError(f"{path}:{line_number}: expected a label followed by "
                                     f"{label_separator!r}; this dataset's lines start with a class label")
            tokens = line.split()
            if tokens:
                sentences.append(tokens)
    if not sentences:
        raise BenchError(f"{path}: the file is empty; every split needs at least one sentence")
    return sentences


def load_corpus(dataset: str, config: DataConfig, data_dir: str | os.PathLike | None = None) -> Corpus:
    """Load ``dataset`` (a folder under the data directory, or ``synthetic``) as ids.

    Reductions from ``config`` (subsampling, vocabulary cap, truncation) are applied here,
    identically for every method.
    """
    if dataset == SYNTHETIC:
        from bench.core.synthetic import generate_corpus
        texts = generate_corpus(config)
        source = f"built-in synthetic (seed {config.synthetic_seed})"
        info = DatasetInfo()
    else:
        root = resolve_data_dir(data_dir)
        if root is None:
            raise BenchError(f"dataset '{dataset}' needs a data directory: pass --data-dir DIR or set "
                             f"{DATA_DIR_ENV}=DIR (the built-in '{SYNTHETIC}' dataset needs none)")
        folder = root / dataset
        info = dataset_info(dataset)
        if not folder.is_dir():
            if not root.is_dir():
                where = f" ({root} does not exist)"
            else:
                known = sorted(p.name for p in root.iterdir() if p.is_dir())
                where = f"; folders there: {', '.join(known)}" if known else ""
            raise BenchError(f"dataset folder {folder} not found{where}; {info.how_to_get}")
        texts = {}
        for split in SPLITS:
            try:
                texts[split] = read_split(folder / f"{split}.txt", info.label_separator)
            except FileNotFoundError:
                raise BenchError(f"{folder}: split '{split}.txt' is missing; {info.how_to_get}") from None
        source = str(folder)
    if config.max_train_sentences is not None:
        texts["train"] = texts["train"][: config.max_train_sentences]
    whole_test = texts["test"]
    if config.max_eval_sentences is not None:
        for split in ("valid", "test"):
            texts[split] = texts[split][: config.max_eval_sentences]
    truncated = 0
    if config.max_length is not None:
        truncated = sum(len(s) > config.max_length for split in SPLITS for s in texts[split])
        texts = {split: [s[: config.max_length] for s in texts[split]] for split in SPLITS}
        whole_test = [s[: config.max_length] for s in whole_test]
    vocab = Vocabulary.build(texts["train"], config.max_vocab, info.unknown_tokens)
    splits = {split: [vocab.encode(s) for s in texts[split]] for split in SPLITS}
    full = None if len(whole_test) == len(splits["test"]) else [vocab.encode(s) for s in whole_test]
    return Corpus(dataset, vocab, splits, source, truncated, full)


def require_one_batch(corpus: Corpus, batch_size: int) -> None:
    """Refuse to train on fewer training sentences than one batch: each epoch would be one
    partial batch, which no setting of a benchmark means."""
    have = len(corpus.splits["train"])
    if have < batch_size:
        raise BenchError(f"{corpus.source}: the training split has {have} sentences, fewer than one batch "
                         f"({batch_size}); use a larger dataset, or --set data.batch_size={max(1, have)} to train "
                         "on it anyway")


def pad_batch(sentences: Sequence[Sequence[int]]) -> torch.Tensor:
    """[B, T+2] LongTensor: start, words, end, then padding."""
    width = max(len(s) for s in sentences) + 2
    batch = torch.full((len(sentences), width), PAD_ID, dtype=torch.long)
    for row, sentence in enumerate(sentences):
        batch[row, : len(sentence) + 2] = torch.tensor([BOS_ID, *sentence, EOS_ID])
    return batch


class BatchedSplit:
    """One split cut into length-grouped batches (reference implementation's batching)."""

    def __init__(self, sentences: Sequence[Sequence[int]], batch_size: int):
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        self.order = order  # batch position -> index in ``sentences`` (to report per-sentence values in file order)
        self.batches = [pad_batch([sentences[i] for i in order[start: start + batch_size]])
                        for start in range(0, len(order), batch_size)]

    def __len__(self) -> int:
        return len(self.batches)

    def to(self, device: torch.device) -> "BatchedSplit":
        """Keep every batch on ``device`` (a GPU): a split is small (Yahoo's 100k training
        documents are about 64 MB of token ids), and a step then starts with no host-to-device
        copy to wait for, which is what pinned memory and prefetching would approximate."""
        self.batches = [batch.to(device) for batch in self.batches]
        return self

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(self.batches)

    def shuffled(self, generator: torch.Generator) -> Iterator[torch.Tensor]:
        """Batches in a fresh random order (one call per epoch)."""
        for index in torch.randperm(len(self.batches), generator=generator).tolist():
            yield self.batches[index]

    def random_batch(self, generator: torch.Generator) -> torch.Tensor:
        return self.batches[int(torch.randint(len(self.batches), (1,), generator=generator))]


def predicted_tokens(x: torch.Tensor) -> torch.Tensor:
    """Tokens a padded batch [B, T] asks the decoder to predict: words plus end tokens (not the
    start), as a 0-dim tensor on the batch's device (reading it is a host sync: do it rarely)."""
    return (x != PAD_ID).sum() - x.size(0)
