"""The verifier's second round (issue 18): it reads the structure of what changed.

A qualifier added to the request, a negating prefix, a letter that names something, a
passive clause, a sentence of context: each rule with pairs that read as sentences,
written for these tests: no prompt here is in the held-out or blind evaluation sets (two
pairs and one prompt come from `tune`, one prompt from the project's earlier set), so
that a rule fitted to the sets' examples would fail here. Real WordNet (Debian's files through
nltk), no fake.
"""

from __future__ import annotations

import pytest

from llmcache_sidecar.semantic import alignment, text, voice, wordnet
from llmcache_sidecar.semantic.verifier import RuleVerifier

RULES = RuleVerifier()


def reason(a: str, b: str) -> str | None:
    """The first rule `a` / `b` fail, checked both ways: the verifier must be symmetric."""
    forward = RULES.verify(text.analyse(a), text.analyse(b)).reason
    assert RULES.verify(text.analyse(b), text.analyse(a)).reason == forward
    return forward


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I cook rice?", "How do I cook brown rice?"),
        ("What is the melting point of chocolate?", "What is the melting point of dark chocolate?"),
        ("How do I delete my account?", "How do I delete my business account?"),
        ("Which snacks are low in sugar?", "Which vegan snacks are low in sugar?"),
        ("Find the sum of all numbers from 1 to 50.", "Find the sum of all even numbers from 1 to 50."),
        ("How do I declare an array in Go?", "How do I declare a byte array in Go?"),
        ("What is the square of 12?", "What is the square root of 12?"),
        ("Can I take ibuprofen?", "Can I take ibuprofen while pregnant?"),
        ("How do I sort a list in Python?", "How do I sort a list in reverse in Python?"),
        (
            "How much paid leave does an employee get?",
            "How much paid leave does an employee caring for a sick parent get?",
        ),
        ("What vegetables are good for dogs?", "What vegetables are toxic for dogs?"),
        ("Which exercises strengthen the lower back?", "I'm a runner. Which exercises strengthen the lower back?"),
    ],
)
def test_a_qualifier_added_to_the_request_is_refused(a: str, b: str) -> None:
    """A word that narrows what is asked (before a noun, as its new head, or a phrase at the end) changes the answer."""
    assert reason(a, b) == "qualifier"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("We had a party last night. How do I get red wine out of a carpet?", "How do I get red wine out of a carpet?"),
        ("I'm going on holiday next week. How do I say thank you in Japanese?", "How do I say thank you in Japanese?"),
        ("Dear support team, how do I change my email address?", "how do i change my email address"),
        ("How can I get better sleep?", "How can I get improved sleep?"),
        ("what time dose the museum close", "What time does the museum close?"),
        ("Why do dogs pant?", "Why is it that dogs pant?"),
    ],
)
def test_context_greetings_and_synonyms_in_place_are_not_qualifiers(a: str, b: str) -> None:
    assert reason(a, b) is None


def test_a_date_in_the_request_still_counts_when_context_is_dropped() -> None:
    """Only a time said in a sentence of context that shares nothing with the other prompt is left out."""
    assert reason("I'm flying next week. What's the weather in Rome?", "What's the weather in Rome?") is None
    assert reason("I'm flying to Rome next week. What's the weather there?", "What's the weather in Rome?") == (
        "datetime"
    )
    assert reason("I'm flying in December. What's the weather in Rome?", "What's the weather in Rome?") == ("datetime")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Which cleaning products are toxic to birds?", "Which cleaning products are non-toxic to birds?"),
        ("Is it legal to fly a drone here?", "Is it illegal to fly a drone here?"),
        ("Is this mushroom edible?", "Is this mushroom inedible?"),
        ("Is my password valid?", "Is my password invalid?"),
    ],
)
def test_a_negating_prefix_is_a_negation(a: str, b: str) -> None:
    assert reason(a, b) == "negation"


def test_a_prefix_negates_only_where_wordnet_records_the_antonym() -> None:
    wn = wordnet.load()
    assert wn is not None
    negated = {w: wn.negated_stem(w) for w in ("nontoxic", "unresponsive", "illegal", "install", "income", "disease")}
    assert negated == {
        "nontoxic": "toxic",
        "unresponsive": "responsive",
        "illegal": "legal",
        "install": None,
        "income": None,
        "disease": None,
    }


def test_a_capital_letter_is_a_name_not_an_article() -> None:
    assert (
        reason(
            "Can a person with type O blood donate to someone with type A?",
            "Can a person with type A blood donate to someone with type O?",
        )
        == "order"
    )
    assert reason("Is plan A cheaper than plan B?", "Is plan B cheaper than plan A?") == "order"


def test_the_us_is_the_country_and_us_is_still_a_pronoun() -> None:
    assert (
        reason("how long does copyright last in the us", "How long does copyright last in the United States?") is None
    )
    words = [t.word for t in text.analyse("Can you tell us about the US?").tokens if t.kind == "word"]
    assert words == ["can", "you", "tell", "us", "about", "the", "united", "states"]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Do banks charge fees on wire transfers?", "Are fees on wire transfers charged by banks?"),
        ("How do bees pollinate tomato plants?", "How are tomato plants pollinated by bees?"),
        ("Can my landlord evict me for having a pet?", "Can I be evicted by my landlord for having a pet?"),
        ("How long should I bake cookies?", "How long should cookies be baked?"),
        ("Do shops accept hand-written cheques?", "Are hand-written cheques accepted by shops?"),
        ("How do dentists treat cavities in children?", "How are cavities in children treated by dentists?"),
    ],
)
def test_a_change_of_voice_is_a_paraphrase(a: str, b: str) -> None:
    assert reason(a, b) is None


@pytest.mark.parametrize(
    ("a", "b", "why"),
    [
        ("Does Amazon match other retailers' prices?", "Are Amazon's prices matched by other retailers?", "order"),
        ("Can my landlord evict me?", "Can I evict my landlord?", "role"),
        ("Can I be evicted by my landlord?", "Can I evict my landlord?", "role"),
        ("Does the bank approve the broker?", "Is the bank approved by the broker?", "order"),
    ],
)
def test_a_role_swap_hidden_in_a_change_of_voice_is_refused(a: str, b: str, why: str) -> None:
    assert reason(a, b) == why


def test_a_passive_clause_is_read_agent_verb_patient() -> None:
    """Words before the clause stay first; a hyphenated word is part of the patient, not its participle."""
    prompt = text.analyse("Are hand-written cheques accepted by shops?")
    words = [prompt.tokens[k].word for k in voice.order(prompt) if prompt.tokens[k].kind == "word"]
    assert words == ["are", "by", "shops", "accepted", "hand", "written", "cheques"]


def test_a_repeated_word_is_matched_where_its_neighbours_agree() -> None:
    """The coat that is asked about is the second one; the first belongs to the context sentence."""
    a = text.analyse("I just bought a wool coat at a market. How do I wash a wool coat?")
    b = text.analyse("How do I wash a wool coat?")
    found = alignment.align(a, b)
    assert [a.tokens[i].word for i in found.left_a] == ["bought", "wool", "coat", "market"]
    assert reason(a.text, b.text) is None


def test_a_complement_said_as_a_compound_keeps_the_order() -> None:
    assert reason("Suggest an itinerary for Lisbon.", "Suggest a Lisbon itinerary.") is None
    assert reason("What is the capital of France?", "What is the France capital?") is None


def test_a_phrase_put_in_another_place_is_seen_past_a_moved_word() -> None:
    assert (
        reason(
            "Give me 12 flashcards on the Cold War as question and answer pairs.",
            "Give me a 12-question multiple-choice quiz on the Cold War.",
        )
        == "substitution"
    )
    assert reason("Explain recursion to a curious teenager.", "Explain recursion to a senior software engineer.") == (
        "substitution"
    )


def test_a_preposition_after_be_is_no_passive_unless_a_participle_follows() -> None:
    """`is the cat in the kitchen` has no participle; `is diabetes in cats diagnosed` does, past `in cats`."""
    assert voice.clauses(text.analyse("Is the cat in the kitchen?")) == []
    (clause,) = voice.clauses(text.analyse("How is diabetes in dogs diagnosed by vets?"))
    prompt = text.analyse("How is diabetes in dogs diagnosed by vets?")
    assert [prompt.tokens[k].word for k in clause.patient] == ["diabetes", "in", "dogs"]
    assert [prompt.tokens[k].word for k in clause.agent] == ["by", "vets"]
