"""A pack's ``text``: how its platform writes a post, and the slang its readers know.

The glossary is for slang and algospeak the model never learnt (``kys``, ``unalive``): staff
write each term down with what it means, and the embedded model reads every post where a term
stands as a word of its own a second time, with the meaning in its place. The text as written
is scored too and the worse of the two counts, so a glossary can add what a post means, never
hide what it says. The LLM tier reads the glossary with the policy. Terms are per pack, so one
tenant's slang ("kms", kilometres on a running forum) is not another's.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from modfleet.normalise import TextFormat
from modfleet.patterns import one_of, whole_words

GLOSSARY_TERMS = 500
TERM_CHARS = 64
MEANING_CHARS = 200
# A reading grows by at most its text's length or this many characters, whichever is more: a
# post of nothing but terms, each read as a long meaning, costs the model twice its length.
GROWTH = 1_000

Term = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TERM_CHARS)]
Meaning = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MEANING_CHARS)
]
_WORD_ENDS = re.compile(r"\w(?:.*\w)?", re.DOTALL)


class TextIn(BaseModel):
    """How the pack's platform writes a post's text: ``plain``, or ``html`` that its readers see
    rendered (the model then reads the rendered text: tags, comments and character references
    cannot split or disguise a word); and its ``glossary`` of slang."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: TextFormat = "plain"
    glossary: dict[Term, Meaning] = Field(default_factory=dict, max_length=GLOSSARY_TERMS)

    @field_validator("glossary", mode="before")
    @classmethod
    def _at_most(cls, value: object) -> object:
        # pydantic's own message would print every term of an over-long glossary.
        if isinstance(value, dict) and len(value) > GLOSSARY_TERMS:
            raise ValueError(f"at most {GLOSSARY_TERMS} terms (this glossary has {len(value)})")
        return value


def glossary_errors(glossary: dict[str, str]) -> list[InitErrorDetails]:
    """Each term the worker could not read as staff meant it, placed at its own line (the
    pack raises them: a field's own validator can only point at the whole glossary)."""
    errors: list[InitErrorDetails] = []
    written: dict[str, str] = {}
    for term, meaning in glossary.items():
        folded = _folded(term)
        if "\n" in term or "\n" in meaning:
            problem = "a term and its meaning are one line each"
        elif not _WORD_ENDS.fullmatch(folded):
            problem = "a term starts and ends with a letter or a digit"
        elif folded in written:
            problem = f"{term!r} is {written[folded]!r} again, in another case"
        else:
            written[folded] = term
            continue
        error = PydanticCustomError("glossary_term", problem)
        errors.append(InitErrorDetails(type=error, loc=("text", "glossary", term), input=term))
    return errors


def _folded(term: str) -> str:
    # As the worker reads a post (NFKC: fullwidth letters are letters) and as a case-blind
    # match reads a letter: lower() is the simple case folding (casefold() makes "ss" of "ß").
    return unicodedata.normalize("NFKC", term).lower()


class Glossary:
    """A pack's glossary, compiled once: a text with its terms read as their meanings."""

    def __init__(self, glossary: dict[str, str]) -> None:
        self._meanings = {_folded(term): meaning for term, meaning in glossary.items()}
        # Most posts hold no term: a case-sensitive scan of the text in small letters finds
        # that (1.9 us a post of the bench's texts, against 8.4 for the pattern below).
        self._any = re.compile(one_of(self._meanings)).search
        self._terms = whole_words(self._meanings)

    def read(self, text: str) -> str:
        if self._any(text.lower()) is None:
            return text
        left = max(len(text), GROWTH)

        def meaning(found: re.Match[str]) -> str:
            nonlocal left
            term = found.group(0)
            said = self._meanings.get(term.lower(), term)
            if len(said) - len(term) > left:
                return term
            left -= len(said) - len(term)
            return said

        return self._terms.sub(meaning, text)
