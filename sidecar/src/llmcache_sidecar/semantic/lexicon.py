"""The word lists the verifier reads prompts with, and the English word frequencies.

Everything the verifier knows about English is here, in plain tables that a reviewer
can read: function words, negation cues, number words, units, weekdays and months,
language names, output formats, and a short alias table for chat spellings and
common technical abbreviations. They were written for this project, not copied.

Word frequencies come from the dictionary that ships inside `symspellpy` (82,765
English words with their counts in a large web corpus). They answer two questions:
"is this a real English word?" (two different real words are never taken for a typo
of each other: Iran is not a typo of Iraq) and "how rare is it?" (rare words are
named things: drugs, places, products).
"""

from __future__ import annotations

import logging
from functools import cache
from importlib.resources import files

from symspellpy.editdistance import DistanceAlgorithm, EditDistance

logger = logging.getLogger(__name__)

_DICTIONARY = "frequency_dictionary_en_82_765.txt"
_OSA = EditDistance(DistanceAlgorithm.DAMERAU_OSA)
RARE_BELOW = 700_000
"""A dictionary word seen fewer times than this is treated like a name (buttermilk, paneer)."""


@cache
def frequencies() -> dict[str, int]:
    """Word -> corpus count, read once (about 0.25 s and 14 MB; call it off the event loop)."""
    path = files("symspellpy") / _DICTIONARY
    counts: dict[str, int] = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            word, _, count = line.partition(" ")
            counts[word] = int(count)
    return counts


def _words(text: str) -> list[str]:
    return text.split()


def within_edits(x: str, y: str, limit: int) -> bool:
    """Damerau (optimal string alignment) distance of `x` and `y` is at most `limit`."""
    return bool(_OSA.compare(x, y, limit) >= 0)


def known(word: str) -> bool:
    return word in frequencies() or word in STOP_WORDS or word in NUMBER_WORDS


def frequency(word: str) -> int:
    return frequencies().get(word, 0)


PARTICLES = frozenset(
    _words(
        """
    about above across against along among around between through during within per via
    up down out off over under again further once
        """
    )
)
"""Prepositions and particles that are function words here (the directional ones are in DIRECTIONAL)."""

FRAMING_WORDS = frozenset(_words("possible sure able good best better nice quick quickly easy easiest simple simply"))
"""How a request judges what it asks for (`a good way`, `the best way`), not what it asks about."""

# Function words and request framing: they never make two prompts different on their
# own. Negation cues, prepositions that carry direction and number words are NOT here.
STOP_WORDS = (
    frozenset(
        _words(
            """
    a an the this that these those there here it its it's itself
    i me my mine myself we us our ours you your yours yourself he him his she her hers they them their theirs
    am is are was were be been being do does did doing done have has had having
    will would shall should can could may might must
    what which who whom whose when where why how whats hows wheres whos
    and or but if then so because as than too very just also really actually even only still
    some any all each every both either much many more most such own same other another
    please pls plz thanks thank thx hi hello hey yo lol ugh oops wait ok okay hmm um
    tell give show explain describe let know need want like help get got use using used
    way ways thing things stuff kind sort lot lots bit
    command commands steps method methods tips ideas idea options recommend suggest
    usually typically commonly exactly basically given
    go going gonna wanna gotta make making made
    anyone someone something anything everything one one's ones
        """
        )
    )
    | FRAMING_WORDS
    | PARTICLES
)

NEGATIONS = frozenset(
    _words(
        """
    not no never none nobody nothing neither nor without cannot
    dont doesnt didnt isnt arent wasnt werent hasnt havent hadnt wont wouldnt cant couldnt shouldnt aint
    disable disabled disables disabling forbid forbids forbidden prohibit prohibits prohibited disallow disallowed
    uninstall uninstalls exclude excludes excluding avoid avoids avoided avoiding lack lacks lacking
        """
    )
)
"""Words that flip a prompt's polarity. `avoid` counts, so "which foods should I avoid" and
"what should I not eat" agree, while "which foods should I eat" does not."""

UNIVERSAL_QUANTIFIERS = frozenset(
    {"all", "every", "each", "both", "whole", "entire", "everything", "everyone", "everybody"}
)
"""`delete every message` is not `delete one message`: a prompt with one of these asks about everything."""

OPPOSITES = frozenset(
    {("in", "out"), ("into", "out"), ("to", "from"), ("before", "after"), ("above", "below"),
     ("over", "under"), ("inside", "outside"), ("with", "without"), ("up", "down"), ("on", "off"),
     ("more", "less"), ("more", "fewer"), ("most", "least"), ("most", "fewest"), ("max", "min")}
)  # fmt: skip
"""Function words of opposite sense: a closed class, seen with or without WordNet."""

DETERMINERS = frozenset(
    _words(
        """
    a an the this that these those my your our their his her its whose what which
    some any all each every both either neither no many much more most few fewer less least several such
        """
    )
)
"""Words that open a noun phrase: between one and a noun stand the noun's modifiers (`the [free] attractions`)."""

CLAUSE_WORDS = frozenset(
    _words(
        """
    i you he she it we they one me him them us
    do does did is are was were be been am can could will would shall should may might must have has had
    how why when where whether if
        """
    )
)
"""Pronouns, auxiliaries and question words: a word after one of them starts a clause, not a noun's modifiers."""

FIRST_PERSON = frozenset({"i", "me", "my", "mine", "myself", "we", "us", "our", "ours", "ourselves"})
"""A sentence with one of these tells about the asker (`My food processor broke last week.`)."""

PASSIVE_AUXILIARIES = frozenset({"is", "are", "was", "were", "be", "been", "being", "get", "gets", "got", "gotten"})
"""Before a past participle these make a clause passive (`is approved`, `got deleted`)."""

FRAMING_VERBS = frozenset({"tell", "show", "give", "teach", "walk", "help", "let", "remind", "send"})
"""`tell me how...`: a pronoun right after these is whom the request is addressed for, not a role."""

OFF_PARTICLE_VERBS = frozenset({"turn", "switch", "shut", "power", "log", "sign"})
"""`turn off` flips `turn on`: after these verbs, `off` is a negation cue and `on` is not content."""

DIRECTIONAL = frozenset({"to", "into", "onto", "from", "in", "towards", "toward"})
"""Prepositions kept in the word order the verifier compares: `USD to EUR` is not `EUR to USD`."""

ORDER_PREPOSITIONS = frozenset({"to", "into", "onto", "from", "in", "on", "at", "by", "for", "with", "of"})

# `one` is left out on purpose: it is a pronoun as often as a count, and "one cup" asks
# what "a cup" asks.
NUMBER_WORDS: dict[str, float] = {
    "zero": 0, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
    "dozen": 12, "single": 1, "pair": 2, "couple": 2, "twice": 2, "double": 2, "triple": 3, "thrice": 3,
    "quadruple": 4, "half": 0.5, "quarter": 0.25,
}  # fmt: skip
SCALE_WORDS: dict[str, float] = {"hundred": 100, "thousand": 1000, "million": 1e6, "billion": 1e9}
ORDINALS: dict[str, int] = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12,
}  # fmt: skip

# Units, by every spelling a prompt may use -> one canonical name. A number takes the unit
# written right after it (`512Mi`, `4 GB`, `350 degrees Fahrenheit`) or a currency sign before it.
UNITS: dict[str, str] = {
    **dict.fromkeys(["%", "percent", "pct", "percentage"], "percent"),
    **dict.fromkeys(["$", "usd", "dollar", "dollars", "buck", "bucks"], "usd"),
    **dict.fromkeys(["€", "eur", "euro", "euros"], "eur"),
    **dict.fromkeys(["£", "gbp", "sterling"], "gbp"),
    **dict.fromkeys(["¥", "jpy", "yen"], "jpy"),
    **dict.fromkeys(["ms", "millisecond", "milliseconds", "msec"], "ms"),
    **dict.fromkeys(["s", "sec", "secs", "second", "seconds"], "s"),
    **dict.fromkeys(["min", "mins", "minute", "minutes"], "min"),
    **dict.fromkeys(["h", "hr", "hrs", "hour", "hours"], "h"),
    **dict.fromkeys(["day", "days"], "day"),
    **dict.fromkeys(["week", "weeks", "wk", "wks"], "week"),
    **dict.fromkeys(["month", "months"], "month"),
    **dict.fromkeys(["year", "years", "yr", "yrs"], "year"),
    **dict.fromkeys(["mm", "millimeter", "millimeters", "millimetre", "millimetres"], "mm"),
    **dict.fromkeys(["cm", "centimeter", "centimeters", "centimetre", "centimetres"], "cm"),
    **dict.fromkeys(["m", "meter", "meters", "metre", "metres"], "m"),
    **dict.fromkeys(["km", "kilometer", "kilometers", "kilometre", "kilometres", "k"], "km"),
    **dict.fromkeys(["mi", "mile", "miles"], "mile"),
    **dict.fromkeys(["ft", "foot", "feet"], "ft"),
    **dict.fromkeys(["inch", "inches"], "inch"),
    **dict.fromkeys(["mg", "milligram", "milligrams"], "mg"),
    **dict.fromkeys(["g", "gram", "grams", "gr"], "g"),
    **dict.fromkeys(["kg", "kilo", "kilos", "kilogram", "kilograms"], "kg"),
    **dict.fromkeys(["lb", "lbs", "pound", "pounds"], "lb"),
    **dict.fromkeys(["oz", "ounce", "ounces"], "oz"),
    **dict.fromkeys(["ml", "milliliter", "milliliters", "millilitre", "millilitres"], "ml"),
    **dict.fromkeys(["l", "liter", "liters", "litre", "litres"], "l"),
    **dict.fromkeys(["cup", "cups"], "cup"),
    **dict.fromkeys(["tbsp", "tablespoon", "tablespoons"], "tbsp"),
    **dict.fromkeys(["tsp", "teaspoon", "teaspoons"], "tsp"),
    **dict.fromkeys(["c", "°c", "celsius", "centigrade"], "celsius"),
    **dict.fromkeys(["f", "°f", "fahrenheit"], "fahrenheit"),
    **dict.fromkeys(["kb", "kilobyte", "kilobytes"], "kb"),
    **dict.fromkeys(["mb", "megabyte", "megabytes"], "mb"),
    **dict.fromkeys(["gb", "gigabyte", "gigabytes"], "gb"),
    **dict.fromkeys(["tb", "terabyte", "terabytes"], "tb"),
    **dict.fromkeys(["ki", "kib"], "kib"),
    **dict.fromkeys(["mib"], "mib"),
    **dict.fromkeys(["gi", "gib"], "gib"),
    **dict.fromkeys(["ti", "tib"], "tib"),
    **dict.fromkeys(["mbps", "mbit", "mbits"], "mbps"),
    **dict.fromkeys(["gbps"], "gbps"),
    **dict.fromkeys(["kbps"], "kbps"),
    **dict.fromkeys(["mhz"], "mhz"),
    **dict.fromkeys(["ghz"], "ghz"),
    **dict.fromkeys(["x"], "times"),
}
# Inside a Kubernetes quantity `512Mi` means mebibytes, not miles: suffixes glued to a number.
GLUED_UNITS: dict[str, str] = {**UNITS, "mi": "mib", "m": "m", "k": "k"}
UNIT_SKIP = frozenset({"degree", "degrees", "°", "us", "u.s."})
"""Words between a number and its unit: `350 degrees Fahrenheit`, `100 US dollars`."""

WEEKDAYS = {
    "monday": "mon", "tuesday": "tue", "wednesday": "wed", "thursday": "thu", "friday": "fri",
    "saturday": "sat", "sunday": "sun", "weekend": "weekend",
}  # fmt: skip
MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9,
    "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
AMBIGUOUS_MONTHS = frozenset({"may", "march", "mar", "jan", "dec", "sep", "oct", "nov", "aug", "jun", "jul", "apr"})
"""Month names that are also words: a month only when capitalised or next to a number."""
DAY_PARTS = frozenset({"morning", "afternoon", "evening", "night", "tonight", "noon", "midnight", "midday"})
RELATIVE_DAYS: dict[str, str] = {
    "today": "now", "now": "now", "currently": "now", "current": "now", "tomorrow": "tomorrow",
    "yesterday": "yesterday", "tonight": "tonight",
}  # fmt: skip
RELATIVE_MARKERS = frozenset({"this", "next", "last", "previous", "coming", "past"})
RELATIVE_SPANS = frozenset({"week", "weekend", "month", "year", "quarter", *WEEKDAYS})
HOLIDAYS = frozenset({"christmas", "easter", "thanksgiving", "halloween", "ramadan", "diwali", "hanukkah"})

LANGUAGES = frozenset(
    _words(
        """
    english french german spanish italian portuguese dutch flemish russian ukrainian polish czech slovak
    slovenian croatian serbian bosnian bulgarian romanian hungarian greek turkish arabic hebrew persian farsi
    urdu hindi bengali punjabi gujarati marathi tamil telugu kannada malayalam sinhala nepali
    chinese mandarin cantonese japanese korean thai vietnamese indonesian malay tagalog filipino khmer lao
    burmese mongolian kazakh uzbek georgian armenian azerbaijani albanian macedonian belarusian lithuanian
    latvian estonian finnish swedish norwegian danish icelandic irish welsh gaelic basque catalan galician
    maltese afrikaans swahili amharic somali zulu xhosa yoruba igbo hausa latin esperanto hawaiian maori
        """
    )
)

FORMATS = frozenset(
    _words(
        """
    json yaml yml xml csv tsv html pdf markdown latex tabular spreadsheet bullet bulleted numbered checklist
    paragraph sentence essay haiku limerick sonnet poem tweet faq mermaid flowchart prose narrative oneliner
        """
    )
)
"""Output forms: two prompts must ask for the same ones (`as JSON` is not `as a table`)."""
CONTEXT_FORMATS = frozenset(_words("table list letter email memo diagram chart graph outline script slide song story"))
"""Words that are an output form only after `as`/`in`/`into` (a restaurant table is not a table format)."""

# Chat spellings and abbreviations -> what they stand for (one or more words).
ALIASES: dict[str, tuple[str, ...]] = {
    "u": ("you",), "ur": ("your",), "r": ("are",), "y'all": ("you",), "ya": ("you",),
    "w/o": ("without",), "w/": ("with",), "b/c": ("because",), "bc": ("because",), "cuz": ("because",),
    "rn": ("right", "now"), "asap": ("soon",), "im": ("i", "am"), "ive": ("i", "have"),
    "k8s": ("kubernetes",), "js": ("javascript",), "ts": ("typescript",), "py": ("python",),
    "postgres": ("postgresql",), "psql": ("postgresql",), "mongo": ("mongodb",),
    "repo": ("repository",), "repos": ("repository",), "db": ("database",), "dbs": ("database",),
    "config": ("configuration",), "env": ("environment",), "docs": ("documentation",),
    "app": ("application",), "apps": ("application",), "info": ("information",), "msg": ("message",),
    "dict": ("dictionary",), "dicts": ("dictionary",), "para": ("paragraph",), "sqrt": ("square", "root"),
    "vs": ("versus",), "v": ("versus",), "approx": ("approximately",), "nyc": ("new", "york"),
    "mins": ("minutes",), "hrs": ("hours",), "secs": ("seconds",), "yrs": ("years",),
    "tmrw": ("tomorrow",), "tmr": ("tomorrow",), "2moro": ("tomorrow",), "tonite": ("tonight",),
    "pic": ("picture",), "pics": ("picture",), "mac": ("macos",), "osx": ("macos",),
}  # fmt: skip

# British spellings -> American, applied to word endings (colour/color, analyse/analyze).
SPELLING_ENDINGS: tuple[tuple[str, str], ...] = (
    ("isation", "ization"), ("ise", "ize"), ("ised", "ized"), ("ising", "izing"), ("yse", "yze"),
    ("our", "or"), ("ours", "ors"), ("oural", "oral"), ("tre", "ter"), ("tres", "ters"),
    ("lled", "led"), ("lling", "ling"), ("ogue", "og"), ("ence", "ense"),
)  # fmt: skip
