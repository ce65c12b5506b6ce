"""The checkable claims of a filled value: titles, quoted spans, capitalised names (institutions,
awards, positions), numbers and years, award and position words, URLs, email addresses and
instructions to the reader.

Pure and linear in the value: one pass over its words, each regex a single class run or a
fixed alternation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from scribe.domain.names import POST_NOMINALS, TITLES
from scribe.domain.ranking import wordset

ClaimKind = Literal[
    "url", "email", "instruction", "title", "quote", "name", "number", "keyword", "overflow"
]
MAX_CLAIMS_PER_VALUE = 24  # more than this in one value is itself a reason not to trust it

_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"']++", re.IGNORECASE)  # one possessive run
# Possessive runs that start only where a run starts (the look-behind): no position inside a
# run is tried again, so a long run without "@" costs one scan, not one per character.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]++@[\w-]++(?:\.[\w-]++)++")
_QUOTED = re.compile(r"[\"\u201c\u201d]([^\"\u201c\u201d\n]{3,300})[\"\u201c\u201d]")
_SENTENCE = re.compile(r"(?<=[.!?;:])\s+|\n+")
_DIGITS = re.compile(r"(?<![\w,.])\d[\d,.]*+")  # a number, not the digits in "H2O"; as above
_EDGE = "\"'()[]{}<>.,;:!?\u201c\u201d\u2018\u2019*_"

# Lower-case words that join a capitalised name ("Institute for Quantum Widgets").
CONNECTORS = wordset("of for and the de du la le von van der & at in on to with from via a an")
# Capitalised words that open sentences and phrases without naming anything.
_OPENERS = wordset(
    "i a an the your my our his her their its this that these those in at on as and but or "
    "for with dear since when while after before during from to by of it we you he she they"
)
_HONORIFICS = TITLES | POST_NOMINALS
_NUMBER_WORDS = wordset(
    "two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty "
    "fifty hundred hundreds thousand thousands million millions billion dozen dozens"
)
# Award and position words: a value that says one claims a distinction the research must hold.
KEYWORDS = wordset(
    "prize award awards awarded medal fellow fellowship laureate nobel director dean chair "
    "president founder tenured emeritus"
)
_IMPERATIVES = wordset(
    "click visit go download reply send call contact sign register ignore disregard forward "
    "transfer wire pay install open buy subscribe follow email text share include apply"
)
# What follows a verb used as a command ("Visit our site", "Apply now"), and not a noun that
# happens to be one ("Text mining", "Open quantum systems").
_COMMAND_OBJECTS = wordset(
    "me us him her them it now here there the this that these those our your my his their a an "
    "to at on via with immediately today all any every previous prior above"
)
_TITLE_CUES = wordset(
    "paper papers book books article articles publication study preprint titled entitled"
)
_INJECTION = re.compile(
    r"\b(ignore|disregard) (all |any |the )?(previous|prior|above|earlier) instructions\b",
    re.IGNORECASE,
)
TITLE_PLACEHOLDER_WORDS = ("paper", "publication", "article", "book", "title")


@dataclass(frozen=True, slots=True)
class Claim:
    """One checkable piece of a value: its kind and its text as written."""

    kind: ClaimKind
    text: str


def is_title_placeholder(placeholder: str) -> bool:
    """Whether a placeholder asks for a title (its name mentions a paper, book, title...)."""
    key = placeholder.lower()
    return any(word in key for word in TITLE_PLACEHOLDER_WORDS)


def _is_command(words: list[str]) -> bool:
    """Whether a sentence's words open with a command to the reader ("Please visit our site",
    "Email admissions@…"), not a noun phrase ("Text mining")."""
    if words and words[0].lower() == "please":
        words = words[1:]
    if len(words) < 2 or words[0].lower().strip(_EDGE) not in _IMPERATIVES:
        return False
    target = words[1].lower().strip(_EDGE)
    return target in _COMMAND_OBJECTS or "@" in target or "://" in target or "www." in target


def _instructions(value: str) -> list[Claim]:
    found = [
        Claim("instruction", sentence.strip())
        for sentence in _SENTENCE.split(value)
        if _is_command(sentence.strip().strip(_EDGE).split())
    ]
    return found or [Claim("instruction", m.group(0)) for m in _INJECTION.finditer(value)]


def _quotes(value: str, title_value: bool) -> list[Claim]:
    """Quoted spans: titles after a title cue ("your paper "…"") or in a title placeholder,
    quotations otherwise."""
    found = []
    for match in _QUOTED.finditer(value):
        before = {w.strip(_EDGE).lower() for w in value[: match.start()].split()[-2:]}
        title = title_value or bool(before & _TITLE_CUES)
        found.append(Claim("title" if title else "quote", match.group(1).strip()))
    return found


def _stripped(words: list[str]) -> list[str]:
    """A capitalised run without its opening stock words and honorifics ("Dr.", "Your")."""
    start = 0
    while start < len(words) - 1 and (
        words[start].lower() in _OPENERS or words[start].lower().rstrip(".") in _HONORIFICS
    ):
        start += 1
    end = len(words)
    while end > start and words[end - 1].lower() in CONNECTORS:
        end -= 1
    return words[start:end]


def _runs(value: str) -> list[tuple[str, bool, bool]]:
    """Each capitalised run of ``value``: its text, whether it opens a sentence, and whether a
    title cue ("paper", "book") comes just before it."""
    runs: list[tuple[str, bool, bool]] = []
    current: list[str] = []
    opens = cue = False
    previous = ""  # the word before, as written (its trailing punctuation ends a run)
    before_previous = ""
    for raw in value.split():
        word = raw.strip(_EDGE).removesuffix("'s").removesuffix("\u2019s")
        starts_sentence = not previous or previous[-1] in ".!?:;\n"
        # A run ends after punctuation and before an opening bracket or quote.
        broken = (bool(previous) and previous[-1] in ',;:.!?)\u201d"') or raw[:1] in '([\u201c"'
        capital = bool(word) and (word[0].isupper() or (word[0].isdigit() and bool(current)))
        if current and (broken or not (capital or word.lower() in CONNECTORS)):
            runs.append((" ".join(current), opens, cue))
            current = []
        if capital and not current:
            opens = starts_sentence
            cues = {previous.strip(_EDGE).lower(), before_previous.strip(_EDGE).lower()}
            cue = bool(cues & _TITLE_CUES)
        if capital or (current and word.lower() in CONNECTORS):
            current.append(word)
        before_previous, previous = previous, raw
    if current:
        runs.append((" ".join(current), opens, cue))
    return runs


def _names(value: str) -> list[Claim]:
    found: list[Claim] = []
    for text, opens, cue in _runs(value):
        words = _stripped(text.split())
        acronym = len(words) == 1 and words[0].isupper() and len(words[0]) > 1
        if not words or (len(words) == 1 and (opens or len(words[0]) == 1) and not acronym):
            continue
        if len(words) == 1 and words[0].lower() in _OPENERS | _HONORIFICS:
            continue
        kind: ClaimKind = "title" if cue and len(words) >= 2 else "name"
        found.append(Claim(kind, " ".join(words)))
    return found


def title_parts(title: str) -> list[str]:
    """The capitalised runs of two words or more in a title claim ("Entangled Widgets at
    Scale, published in 2024" → "Entangled Widgets at Scale")."""
    parts = (" ".join(_stripped(text.split())) for text, _, _ in _runs(title))
    return [part for part in parts if len(part.split()) >= 2]


def _title_of(value: str) -> str:
    """A title placeholder's value without the lower-case words before the title
    ("your paper Entangled Widgets" → "Entangled Widgets"); empty when nothing is capitalised
    ("your work on widgets" names no title)."""
    words = value.split()
    start = 0
    while (
        start < len(words) and not words[start][:1].isupper() and words[start][:1] not in '"\u201c'
    ):
        start += 1
    return " ".join(words[start:]).strip(_EDGE)


def extract(value: str, placeholder: str) -> list[Claim]:
    """The claims of one filled value, in a fixed order, at most ``MAX_CLAIMS_PER_VALUE`` (one
    ``overflow`` claim stands for the rest)."""
    urls = [Claim("url", m.group(0).rstrip(_EDGE)) for m in _URL.finditer(value)]
    emails = [Claim("email", m.group(0)) for m in _EMAIL.finditer(value)]
    rest = _EMAIL.sub(" , ", _URL.sub(" , ", value))  # a comma: the names on each side differ
    title_value = is_title_placeholder(placeholder)
    quotes = _quotes(rest, title_value)
    claims = [*urls, *emails, *_instructions(value), *quotes]
    rest = _QUOTED.sub(" , ", rest)
    if title_value and not quotes:
        claims.append(Claim("title", _title_of(rest)))
    names = [c for c in _names(rest) if not title_value or c.kind != "name"]
    claims += names
    claims += [Claim("number", m.group(0).rstrip(".,")) for m in _DIGITS.finditer(rest)]
    named = {w.lower() for c in names for w in c.text.split()}
    for word in rest.lower().split():
        word = word.strip(_EDGE)
        if word in _NUMBER_WORDS:
            claims.append(Claim("number", word))
        elif word in KEYWORDS and word not in named:
            claims.append(Claim("keyword", word))
    unique = list(dict.fromkeys(c for c in claims if c.text))
    if len(unique) > MAX_CLAIMS_PER_VALUE:
        overflow = Claim("overflow", f"{len(unique)} claims in one value")
        return [*unique[:MAX_CLAIMS_PER_VALUE], overflow]
    return unique
