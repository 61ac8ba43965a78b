"""Write ``corpus.txt``, the bundled character-level corpus behind ``data tokens;``.

    python -m pruneql.data.make_corpus      # rewrites pruneql/data/corpus.txt, same bytes

Every line is generated here, so the text carries no one else's licence terms. Four kinds
of line, each with structure a tiny language model can pick up in a few hundred steps:
English-like sentences from a small grammar (subject-verb agreement, a/an, a noun phrase
or a place after the verb), additions and subtractions with their results, arithmetic
progressions, and runs of the alphabet. The text is ASCII, so byte ids are < 128.

    >>> print(corpus(size=120))
    Three teachers wait under the old mill.
    68 - 48 = 20.
    One happy child helps the horse.
    Letters: u v w x y z.
    Some young birds like two foxes.
    <BLANKLINE>
"""
from __future__ import annotations

import random
from pathlib import Path

CORPUS_FILE = Path(__file__).with_name("corpus.txt")
SEED = 20240601
SIZE = 160_000      # bytes, about 2,500 windows of 64 tokens

NOUNS = {"cat": "cats", "dog": "dogs", "fox": "foxes", "bird": "birds", "child": "children",
         "farmer": "farmers", "mouse": "mice", "teacher": "teachers", "horse": "horses"}
INTRANSITIVE = {"runs": "run", "sleeps": "sleep", "sings": "sing", "waits": "wait",
                "jumps": "jump", "walks": "walk"}
TRANSITIVE = {"sees": "see", "likes": "like", "follows": "follow", "finds": "find",
              "helps": "help", "calls": "call"}
ADJECTIVES = ("small", "big", "red", "old", "happy", "quiet", "brown", "young")
PREPOSITIONS = ("near", "behind", "under", "beside", "to")
PLACES = ("the river", "the old mill", "the garden", "the hill", "the school", "the market")
SINGULAR = ("the", "a", "one", "this")
PLURAL = ("the", "two", "three", "some", "these", "many")
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def corpus(seed: int = SEED, size: int = SIZE) -> str:
    """Whole lines of generated text, ``size`` characters or a line more."""
    rng = random.Random(seed)
    makers = (sentence, sentence, sentence, arithmetic, progression, alphabet)
    lines, total = [], 0
    while total < size:
        line = rng.choice(makers)(rng)
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines) + "\n"


def sentence(rng: random.Random) -> str:
    """'Two red birds sing near the hill.' -- the verb agrees with its subject."""
    plural = rng.random() < 0.5
    subject = _noun_phrase(rng, plural)
    if rng.random() < 0.5:
        singular, plural_form = rng.choice(list(TRANSITIVE.items()))
        rest = _noun_phrase(rng, rng.random() < 0.5)
    else:
        singular, plural_form = rng.choice(list(INTRANSITIVE.items()))
        rest = f"{rng.choice(PREPOSITIONS)} {rng.choice(PLACES)}"
    text = f"{subject} {plural_form if plural else singular} {rest}."
    return text[0].upper() + text[1:]


def arithmetic(rng: random.Random) -> str:
    """'12 + 35 = 47.' or '88 - 10 = 78.' (never negative)."""
    a, b = rng.randint(0, 99), rng.randint(0, 99)
    if rng.random() < 0.5:
        return f"{a} + {b} = {a + b}."
    a, b = max(a, b), min(a, b)
    return f"{a} - {b} = {a - b}."


def progression(rng: random.Random) -> str:
    """'Count by 3: 4 7 10 13 16 19.'"""
    start, step = rng.randint(0, 90), rng.randint(1, 5)
    return f"Count by {step}: " + " ".join(str(start + step * i) for i in range(6)) + "."


def alphabet(rng: random.Random) -> str:
    """'Letters: d e f g h.' -- a run of the alphabet, wrapping after z."""
    start, length = rng.randrange(26), rng.randint(4, 8)
    run = (LETTERS[(start + i) % 26] for i in range(length))
    return "Letters: " + " ".join(run) + "."


def _noun_phrase(rng: random.Random, plural: bool) -> str:
    noun = rng.choice(list(NOUNS))
    words = [rng.choice(PLURAL if plural else SINGULAR)]
    if rng.random() < 0.5:
        words.append(rng.choice(ADJECTIVES))
    words.append(NOUNS[noun] if plural else noun)
    if words[0] == "a" and words[1][0] in "aeiou":
        words[0] = "an"
    return " ".join(words)


def main() -> None:
    CORPUS_FILE.write_bytes(corpus().encode("ascii"))
    print(f"wrote {CORPUS_FILE} ({CORPUS_FILE.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
