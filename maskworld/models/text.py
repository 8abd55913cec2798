"""Words as tokens: a vocabulary built from the data's own missions (no downloads, no pretrained tokenizer).

BabyAI's instructions are a small closed language ("go to the red ball", "pick up a key"), so a word-level
vocabulary is exact and tiny: PAD = 0 (also the end of the text), UNK = 1, then every word seen, sorted.
Texts are lower-cased and split on spaces and punctuation; a text longer than `length` is refused rather than
cut, so an instruction is never silently changed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from maskworld.errors import UserError

PAD, UNK = 0, 1
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@dataclass
class TextVocab:
    words: list[str]
    """Every word, index = id; words[0] = "<pad>", words[1] = "<unk>"."""
    length: int
    """Tokens per text (padded with PAD)."""

    @classmethod
    def build(cls, texts: Iterable[str], slack: int = 2) -> TextVocab:
        texts = list(texts)
        if not texts:
            raise UserError("no episode of the data has a mission text; collect a BabyAI level "
                            "(e.g. `maskworld collect --env BabyAI-GoToLocal-v0 --view full --policy bot ...`)")
        seen = sorted({w for t in texts for w in words(t)})
        longest = max(len(words(t)) for t in texts)
        return cls(["<pad>", "<unk>", *seen], longest + slack)

    @property
    def size(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> np.ndarray:
        """Text -> (length,) int64 ids; unknown words -> UNK."""
        ids = {w: i for i, w in enumerate(self.words)}
        ws = words(text)
        if len(ws) > self.length:
            raise UserError(f"the text {text!r} has {len(ws)} words; this world reads at most {self.length}")
        out = np.full(self.length, PAD, dtype=np.int64)
        out[:len(ws)] = [ids.get(w, UNK) for w in ws]
        return out

    def unknown(self, text: str) -> list[str]:
        """Words of `text` this vocabulary has never seen (a world cannot be asked for them)."""
        known = set(self.words)
        return [w for w in words(text) if w not in known]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text, up to the first PAD."""
        out = []
        for i in ids:
            i = int(i)
            if i == PAD:
                break
            out.append(self.words[i] if 0 <= i < self.size else "<unk>")
        return " ".join(out)

    def to_dict(self) -> dict:
        return {"words": list(self.words), "length": int(self.length)}

    @classmethod
    def from_dict(cls, d: dict) -> TextVocab:
        return cls(list(d["words"]), int(d["length"]))
