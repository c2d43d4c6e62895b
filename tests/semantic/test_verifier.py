"""The verifier: what it reads from a prompt, and what it lets through.

These need no model: the verifier is deterministic, so the whole hand-written pair set
is a regression test for it (the figures with the real embedding model are
`make eval-semantic`'s, in docs/semantic.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmcache_sidecar.semantic import normalise, text, wordnet
from llmcache_sidecar.semantic.order import one_block_move
from llmcache_sidecar.semantic.text import Number
from llmcache_sidecar.semantic.verifier import RuleVerifier

DATA = Path(__file__).resolve().parent.parent / "data"
RULES = RuleVerifier()


def pairs(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def accepted(a: str, b: str) -> bool:
    return RULES.verify(text.analyse(a), text.analyse(b)).accepted


@pytest.mark.parametrize("name", ["semantic_pairs.jsonl", "semantic_pairs_holdout.jsonl"])
def test_no_hand_written_near_miss_is_accepted(name: str) -> None:
    served = [r for r in pairs(name) if r["label"] == "near_miss" and accepted(r["a"], r["b"])]
    assert served == []


@pytest.mark.parametrize("name", ["semantic_pairs.jsonl", "semantic_pairs_holdout.jsonl"])
def test_the_verifier_is_symmetric_on_the_pair_sets(name: str) -> None:
    rows = pairs(name)
    assert [accepted(r["a"], r["b"]) for r in rows] == [accepted(r["b"], r["a"]) for r in rows]


@pytest.mark.parametrize(("name", "floor"), [("semantic_pairs.jsonl", 0.52), ("semantic_pairs_holdout.jsonl", 0.60)])
def test_most_paraphrases_are_accepted(name: str, floor: float) -> None:
    """A floor under recall, so that a rule made stricter by accident shows up here.

    Measured 60.2% and 63.3% after issue 18's first round (the share-of-words rule, which
    these sets were written against, gave 70%+; it also served 5.9% of the fresh
    near-misses); 53.2% and 63.3% after its second round, whose qualifier rule refuses 28
    of the first set's paraphrases (rewordings that add a word it cannot tell from a
    narrowing one: `the pandas library`, `a Windows machine`): a cost taken for safety.
    """
    rows = [r for r in pairs(name) if r["label"] == "paraphrase"]
    assert sum(accepted(r["a"], r["b"]) for r in rows) / len(rows) >= floor


@pytest.mark.parametrize(
    ("a", "b", "reason"),
    [
        ("Explain recursion.", "Explain iteration.", "substitution"),
        ("Is coffee healthy?", "Is tea healthy?", "substitution"),
        ("What is the capital of France?", "What is the population of France?", "substitution"),
        ("Give me a recipe for beef stew.", "Give me a recipe for lamb stew.", "substitution"),
        ("How do I turn on two-factor authentication?", "How do I turn off two-factor authentication?", "negation"),
        ("Which foods should I avoid?", "Which foods should I eat?", "negation"),
        ("How many cups are in a liter?", "How many liters are in a cup?", "direction"),
        ("How do I rebase my feature branch onto main?", "How do I rebase main onto my feature branch?", "direction"),
        ("Remind me at 7pm.", "Remind me at 7am.", "datetime"),
        ("What's the weather this weekend?", "What's the weather next weekend?", "datetime"),
        ("Is 6 hours of sleep enough?", "Is six hours of sleep enough?", None),
        ("Set the timeout to 5 seconds.", "Set the timeout to 5 minutes.", "unit"),
        (
            "My coworker reports to me. How do I give feedback?",
            "I report to my coworker. How do I give feedback?",
            "role",
        ),
        ("Translate 'good luck' into Dutch.", "Translate 'good luck' into Danish.", "language"),
        ("Write a sonnet about the sea.", "Write a haiku about the sea.", "format"),
        ("What does `ls -la` show?", "What does `ls -lh` show?", "code"),
        ("Translate 'I like it' into Spanish.", "Translate 'I like that' into Spanish.", "quote"),
        ("How do I install Node.js on Ubuntu?", "How do I install Node.js on Fedora?", "entity"),
        # Issue 18: facets read with WordNet, and what changed rather than how much is shared.
        ("How do I upload a file to S3?", "How do I download a file from S3?", "antonym"),
        ("How do I increase the heap size?", "How do I decrease the heap size?", "antonym"),
        ("How do I subscribe to your newsletter?", "How do I unsubscribe from your newsletter?", "antonym"),
        ("What is the check-in time at the hotel?", "What is the check-out time at the hotel?", "antonym"),
        ("Can I bring food into Australia?", "Can I bring food out of Australia?", "antonym"),
        ("Which is the closest airport to Yosemite?", "Which is the largest airport near Yosemite?", "comparative"),
        ("What is the tallest mountain in Africa?", "What is the second tallest mountain in Africa?", "number"),
        ("How do I delete one message?", "How do I delete every message?", "scope"),
        ("Solve for x: 2x + 6 = 20.", "Solve for x: 2x - 6 = 20.", "number"),
        ("Print the numbers from 1 to 10.", "Print the numbers from 10 to 1.", "order"),
        (
            "What can a lender do if the borrower stops paying?",
            "What can a borrower do if the lender stops paying?",
            "order",
        ),
        ("Explain pointers to a complete beginner.", "Explain pointers to a software architect.", "substitution"),
        ("How long do I bake salmon?", "How long do I grill salmon?", "substitution"),
        ("Reserve a table for two this Friday at 7pm.", "Book dinner for 2 people on Friday at 19:00.", "substitution"),
    ],
)
def test_the_first_rule_that_fails_is_the_reason(a: str, b: str, reason: str | None) -> None:
    assert RULES.verify(text.analyse(a), text.analyse(b)).reason == reason


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("In Python, how do I sort a list?", "How do I sort a list in Python?"),
        ("how do i restrat a pod in kuberentes", "How do I restart a pod in Kubernetes?"),
        (
            "How do I turn on the cluster autoscaler for an AKS node pool?",
            "How do I turn on the cluster autoscaler for an Azure Kubernetes Service node pool?",
        ),
        (
            "yo how do i bounce my k8s deployment w/o downtime",
            "how do i bounce my kubernetes deployment without downtime",
        ),
        ("Which foods should I avoid when pregnant?", "Which foods should I not have when pregnant?"),
        # Issue 18: synonyms (WordNet), phrasal verbs, framing, voice, coordination.
        ("How do I delete a local branch in git?", "How do I remove a local branch in git?"),
        ("Can I bring a power bank in my checked luggage?", "Can I bring a power bank in my checked baggage?"),
        ("How long does the flu usually last?", "How long does influenza usually last?"),
        ("How do I cancel my subscription?", "Tell me how to call off my subscription."),
        ("How do I restart my router?", "Tell me how to restart my router."),
        ("How does a bank approve a mortgage?", "How is a mortgage approved by a bank?"),
        ("Should the driver or the passenger pay the toll?", "Should the passenger or the driver pay the toll?"),
    ],
)
def test_paraphrases_that_keep_every_fact_are_accepted(a: str, b: str) -> None:
    assert accepted(a, b)


@pytest.mark.parametrize(
    ("prompt", "numbers"),
    [
        ("Convert 100 USD to EUR.", [Number(100, "usd")]),
        ("How do I convert 100 US dollars to euros?", [Number(100, "usd")]),
        ("Set a memory limit of 512Mi.", [Number(512, "mib")]),
        ("A $300,000 mortgage at 6% over 30 years", [Number(300000, "usd"), Number(6, "percent"), Number(30, "year")]),
        ("Give me three bullet points.", [Number(3, None)]),
        ("How many tablespoons are in a quater cup?", [Number(0.25, "cup")]),
        ("What is one cup of flour in grams?", []),
    ],
)
def test_numbers_are_read_with_their_units(prompt: str, numbers: list[Number]) -> None:
    assert text.analyse(prompt).numbers == numbers


def test_without_wordnet_a_synonym_is_a_substitution_and_an_antonym_goes_unseen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No nltk or no WordNet files (a sidecar without the `semantic` extra): fewer hits, no wrong one here."""
    monkeypatch.setattr(wordnet, "load", lambda: None)
    synonym = RULES.verify(text.analyse("How do I delete a branch?"), text.analyse("How do I remove a branch?"))
    antonym = RULES.verify(text.analyse("How do I upload a file?"), text.analyse("How do I download a file?"))
    assert (synonym.reason, antonym.reason) == ("substitution", "substitution")


def test_times_days_and_relative_dates_are_read() -> None:
    prompt = text.analyse("Book a table on Friday at 7pm or 19:30 next week, and remind me tomorrow.")
    assert prompt.times == {"19:00", "19:30"}
    assert prompt.days == {"fri"}
    assert prompt.relative == {"next-week", "tomorrow"}


def test_code_spans_and_quotes_are_kept_whole() -> None:
    prompt = text.analyse("What does `git reset --hard` do to 'my last commit'?")
    assert prompt.code == ["git reset --hard"]
    assert prompt.quotes == [("my", "last", "commit")]


@pytest.mark.parametrize(
    ("order", "one_move"),
    [([0, 1, 2, 3], True), ([2, 3, 0, 1], True), ([0, 2, 3, 1, 4], True), ([2, 1, 0], False), ([1, 0, 3, 2], False)],
)
def test_one_block_move_tells_a_moved_clause_from_a_swap(order: list[int], one_move: bool) -> None:
    assert one_block_move(order) is one_move


def test_the_embedded_text_is_lower_case_with_typos_and_chat_spellings_fixed() -> None:
    normalise.warm_up()
    assert normalise.normalise("How do I restrat a pod in Kuberentes w/o `kubectl`?") == (
        "how do i restart a pod in kuberentes without `kubectl`?"
    )
