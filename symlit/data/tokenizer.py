"""Tokenizers built with HF ``tokenizers``: a closed word-level vocabulary or a trained BPE.

A :class:`Seq2SeqTokenizer` is saved as ``tokenizer.json`` in every run directory and inside
every checkpoint, so a model is never separated from the vocabulary it was trained with.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from symlit.core.atomic import write_text_atomic

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK]


class Seq2SeqTokenizer:
    """Thin wrapper over a ``tokenizers.Tokenizer`` with the ids the model needs.

    ``encode`` returns ids without special tokens; the data collator adds BOS/EOS.
    ``decode`` drops special tokens; word-level output is the whitespace-joined tokens.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        missing = [t for t in SPECIAL_TOKENS if tokenizer.token_to_id(t) is None]
        if missing:
            raise ValueError(f"tokenizer lacks the special tokens {missing}; build it with symlit.data.tokenizer")
        self.hf = tokenizer
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = (tokenizer.token_to_id(t) for t in SPECIAL_TOKENS)

    @classmethod
    def word_level(cls, vocabulary: Iterable[str]) -> Seq2SeqTokenizer:
        """Closed vocabulary: the special tokens then ``vocabulary`` in order (duplicates dropped)."""
        vocab: dict[str, int] = {}
        for token in [*SPECIAL_TOKENS, *vocabulary]:
            vocab.setdefault(token, len(vocab))
        hf = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
        hf.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        hf.add_special_tokens(SPECIAL_TOKENS)
        return cls(hf)

    @classmethod
    def train_bpe(cls, texts: Iterable[str], vocab_size: int) -> Seq2SeqTokenizer:
        """Byte-level BPE trained on ``texts`` (the workshop's subword choice, for comparison)."""
        if vocab_size <= len(SPECIAL_TOKENS):
            raise ValueError(f"data.task.bpe_vocab_size={vocab_size} must exceed {len(SPECIAL_TOKENS)}")
        hf = Tokenizer(models.BPE(unk_token=UNK))
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=SPECIAL_TOKENS,
            show_progress=False,
        )
        hf.train_from_iterator(texts, trainer=trainer)
        return cls(hf)

    @classmethod
    def from_json(cls, text: str) -> Seq2SeqTokenizer:
        return cls(Tokenizer.from_str(text))

    @classmethod
    def from_file(cls, path: str | Path) -> Seq2SeqTokenizer:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer file {path} does not exist")
        try:
            return cls(Tokenizer.from_file(str(path)))
        except Exception as err:  # tokenizers raises a bare Exception on bad JSON
            raise ValueError(f"{path} is not a valid tokenizer.json: {err}") from err

    def to_json(self) -> str:
        return self.hf.to_str()

    def save(self, path: str | Path) -> None:
        """Write ``tokenizer.json`` atomically (a crash never leaves half a file)."""
        write_text_atomic(path, self.to_json())

    def __len__(self) -> int:
        return self.hf.get_vocab_size()

    def fingerprint(self) -> str:
        """Stable identity of the vocabulary and model (for mismatch checks)."""
        return json.dumps(json.loads(self.to_json())["model"], sort_keys=True)

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.hf.encode_batch(list(texts), add_special_tokens=False)]

    def _content(self, ids: Sequence[int]) -> list[int]:
        """Ids up to the first EOS, without padding or BOS (``<unk>`` is kept: it is an error)."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                out.append(i)
        return out

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` up to the first EOS."""
        return self.hf.decode(self._content(ids), skip_special_tokens=False)

    def decode_batch(self, batch: Sequence[Sequence[int]]) -> list[str]:
        return self.hf.decode_batch([self._content(ids) for ids in batch], skip_special_tokens=False)

    def known_ids(self, tokens: Iterable[str]) -> tuple[int, ...]:
        """Ids of those ``tokens`` that are in the vocabulary (e.g. a task's digit tokens), sorted."""
        return tuple(sorted({i for t in tokens if (i := self.hf.token_to_id(t)) is not None}))

    def tokens(self, text: str) -> list[str]:
        """The tokens ``text`` splits into (without BOS/EOS), as strings: for showing inputs."""
        return self.hf.encode(text, add_special_tokens=False).tokens
