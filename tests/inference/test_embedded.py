"""The embedded CPU tier: the shipped model scores every category; alt-profanity-check stays
selectable by the pack."""

from __future__ import annotations

import asyncio

import pytest

from modfleet.errors import FatalError
from modfleet.inference.embedded import LABEL, EmbeddedClassifier
from modfleet.inference.routing import Backends
from modfleet.model.features import READING_ID
from modfleet.normalise import normalise
from modfleet.policy import Policy


@pytest.fixture(scope="module")
def embedded() -> EmbeddedClassifier:
    return EmbeddedClassifier()


async def test_the_default_pack_gets_a_score_for_every_category(
    embedded: EmbeddedClassifier, policy: Policy
) -> None:
    threat, news = await embedded.classify(
        ["I'm going to stab you tonight", "Police report a stabbing downtown last night"], policy
    )
    scores = threat.policy_scores(policy)
    assert set(scores) == set(policy.categories)  # none unscored
    assert LABEL not in threat.scores  # alt-profanity-check is not run for this pack
    assert scores["violence"] == max(scores.values()) > 0.5
    assert news.policy_scores(policy)["violence"] < 0.2


async def test_a_pack_mapping_offensive_gets_alt_profanity_check_only(
    embedded: EmbeddedClassifier, small_policy: Policy
) -> None:
    # llm_policy.yaml maps harassment to "offensive" and nothing to our labels.
    verdicts = await embedded.classify(["you are a fucking idiot", "lovely day"], small_policy)
    assert [set(v.scores) for v in verdicts] == [{LABEL}, {LABEL}]
    assert verdicts[0].scores[LABEL] > 0.9 > verdicts[1].scores[LABEL]


async def test_obfuscated_abuse_scores_like_the_plain_text(
    embedded: EmbeddedClassifier, policy: Policy
) -> None:
    plain = "you are a pathetic worthless idiot"
    disguised = "y0u 4re a p a t h e t i c w\u200borthless \u0456d\u0456\u043et"
    a, b = await embedded.classify([plain, disguised], policy)
    harassment_a, harassment_b = (v.policy_scores(policy)["harassment"] for v in (a, b))
    assert harassment_b > 0.5 * harassment_a > 0.2


@pytest.mark.parametrize(
    "disguised",
    [
        "you are a worthless idi\u0585t",  # Armenian o
        "you are a worthless \u13a5\u13a0\u13a5o\u13a2",  # Cherokee
        "you are a worthless \u0269d\u0269ot",  # Latin small iota
        "you are a worthless idi\U000118e0t",  # Warang Citi o
    ],
)
async def test_look_alikes_from_any_script_cannot_disguise_an_insult(
    embedded: EmbeddedClassifier, policy: Policy, disguised: str
) -> None:
    plain = "you are a worthless idiot"
    texts = [normalise(t, 1000).text for t in (plain, disguised)]
    verdicts = await embedded.classify(texts, policy)
    actions = [policy.decide(v.policy_scores(policy)).action for v in verdicts]
    assert actions == ["remove", "remove"]


@pytest.mark.parametrize(
    ("plain", "disguised"),
    [
        ("kill yourself", "k*ill* yourse*lf*"),
        ("kill yourself", "k**ill** your**self**"),
        ("you are a worthless idiot", "you are a w~~orth~~less id*io*t"),
        # Glued by emphasis: read through alone, "killayourself" would hide both words.
        ("kill yourself", "kill*a*yourself"),
        ("kill yourself", "k\U0001f52aill yours\u2764\ufe0felf"),  # emoji inside the words
        ("kill yourself", "ki11 yourse1f"),  # 1 for l, where l33t reads 1 as i
        # Punctuation inside a word: the word view splits it in two.
        ("kill yourself", "k,ill yours,elf"),
        ("kill yourself", "k'ill your'self"),
        ("kill yourself", "k\u2019ill your\u2019self"),
        ("kill yourself", "k.ill yours.elf"),
        ("kill yourself", "k;ill yourself"),
        ("go die in a fire", "go d'ie in a f,ire"),
        # A hashtag's words, told apart by their capitals only.
        ("go die in a fire", "#GoDieInAFire"),
        ("kill yourself", "#KillYourself"),
        # Words run together in small letters: no capital to cut them at.
        ("kill yourself", "killyourself"),
        ("kill yourself", "#killyourself"),
        ("go kill yourself", "gokillyourself"),
        ("go die in a fire", "#godieinafire"),
        ("you are a worthless idiot", "youareaworthlessidiot"),
        # Letter pairs that read as one letter: rn as m, vv as w, cl as d.
        ("you are a worthless idiot", "you are a vvorthless icliot"),
        ("go die in a fire", "go clie in a fire"),
        ("you are a stupid moron", "you are a stupicl rnoron"),
        ("kill yourself you dumb whore", "kill yourself you clurnb vvhore"),
    ],
)
async def test_what_a_reader_reads_through_cannot_disguise_abuse(
    embedded: EmbeddedClassifier, policy: Policy, plain: str, disguised: str
) -> None:
    # Italics a markdown platform renders away, emoji, a 1 for an l: a reader reads through
    # them; "k*ill*" split the word, and the post was allowed where the plain text is escalated.
    # The worse of the text as written and read again counts, so joining hides nothing either.
    texts = [normalise(t, 1000).text for t in (plain, disguised)]
    verdicts = await embedded.classify(texts, policy)
    actions = [policy.decide(v.policy_scores(policy)).action for v in verdicts]
    assert actions[0] != "allow"
    assert actions[1] == actions[0]


@pytest.mark.parametrize(
    "greeting",
    [
        "Привет, как дела? Сегодня хорошая погода, пойдём гулять в парк.",
        "Բարև, ինչպե՞ս ես։ Այսօր եղանակը լավ է, գնանք զբոսնելու։",  # noqa: RUF001
        "Γεια σου, τι κάνεις; Ο καιρός σήμερα είναι υπέροχος.",  # noqa: RUF001
        "ᏏᏲ, ᏙᎯᏧ? ᎣᏏᏲ ᎠᏆᏚᎵ.",
        "ᐊᐃᖓᐃ, ᖃᓄᐃᑉᐱᑦ? ᐅᓪᓗᒥ ᓯᓚ ᐱᐅᔪᖅ.",
    ],
)
async def test_posts_written_in_those_scripts_are_not_read_as_abuse(
    embedded: EmbeddedClassifier, policy: Policy, greeting: str
) -> None:
    # Folding their letters to Latin makes nonsense of them, which must stay harmless nonsense.
    [verdict] = await embedded.classify([normalise(greeting, 1000).text], policy)
    scores = verdict.policy_scores(policy)
    assert policy.decide(scores).action == "allow"
    assert max(scores.values()) < 0.3


def test_the_model_id_names_both_models_and_the_reading(embedded: EmbeddedClassifier) -> None:
    # Cache keys carry it: a new version of either model, or of how a text is read (the
    # look-alike letters it folds, Unicode's confusables from a library; the word view's
    # rules), must not reuse old verdicts.
    assert embedded.model_id.startswith("modfleet-embedded-")
    assert "+alt-profanity-check-" in embedded.model_id
    assert f"+read-{READING_ID}+" in embedded.model_id


async def test_hostile_records_cost_only_themselves_and_never_change_a_neighbour(
    embedded: EmbeddedClassifier, policy: Policy
) -> None:
    # Character n-grams are hashed over the whole batch at once: a neighbour's text must not
    # leak into a post's n-grams, whatever it holds.
    normal = "you are a worthless idiot"
    hostile = [
        "x" * 20_000,
        "half a pair \ud800 of surrogates",
        "\u202e" * 50 + "toidi",
        "",
        "\x00\x01\x7f",
        "😀" * 500,
    ]
    [alone] = await embedded.classify([normal], policy)
    batch = await embedded.classify([*hostile, normal, *hostile], policy)
    assert len(batch) == 2 * len(hostile) + 1
    assert batch[len(hostile)].scores == pytest.approx(alone.scores, abs=1e-6)
    assert all(0.0 <= s <= 1.0 for v in batch for s in v.scores.values())


async def test_a_batch_of_posts_at_the_length_limit_never_stalls_the_event_loop(
    embedded: EmbeddedClassifier, policy: Policy
) -> None:
    # Scoring 1,024 posts of 20,000 characters takes seconds: on the event loop it would starve
    # the Kafka heartbeats and /health for all of it. The loop must keep its turns meanwhile.
    # (96 such posts took 0.47 s once the model got faster, and 384 took 0.48 s on a fast
    # machine: too short for a stall to show.)
    body = "you are a worthless idiot and this goes on " * 465
    texts = [f"post {i}: {body}" for i in range(1024)]
    gaps: list[float] = []
    scoring = asyncio.ensure_future(embedded.classify(texts, policy))
    loop = asyncio.get_running_loop()
    last = loop.time()
    started = last
    while not scoring.done():
        await asyncio.sleep(0.01)
        now = loop.time()
        gaps.append(now - last)
        last = now
    assert len(await scoring) == len(texts)
    assert loop.time() - started > 0.5  # long enough for a stall to show
    assert max(gaps) < 0.4, f"the loop stalled for {max(gaps):.2f} s"


def with_labels(policy: Policy, category: str, labels: list[str]) -> Policy:
    changed = policy.categories[category].model_copy(update={"model_labels": labels})
    return policy.model_copy(update={"categories": {**policy.categories, category: changed}})


@pytest.mark.parametrize(
    ("label", "hint"),
    [
        ("modfleet:harrasment", "did you mean 'modfleet:harassment'?"),
        ("modfleet:Harassment", "did you mean 'modfleet:harassment'?"),
        ("harassment", "did you mean 'modfleet:harassment'?"),
        ("ofensive", "did you mean 'offensive'?"),
        ("modfleat:harassment", "did you mean 'modfleet:harassment'?"),
    ],
)
async def test_a_label_the_model_does_not_emit_is_refused_at_load(
    embedded: EmbeddedClassifier, policy: Policy, label: str, hint: str
) -> None:
    # Before: accepted, and "you are a worthless idiot..." was then allowed (harassment unscored).
    misspelt = with_labels(policy, "harassment", [label])
    with pytest.raises(FatalError) as refused:
        Backends.fixed(embedded).check([misspelt])  # what the worker and hot reload ask
    message = str(refused.value)
    assert misspelt.label in message
    assert "categories.harassment.model_labels[0]" in message
    assert repr(label) in message
    assert hint in message
    assert "It emits: modfleet:harassment, modfleet:hate," in message
    assert message.endswith(", offensive")  # alt-profanity-check's label too


def test_the_labels_it_emits_and_other_models_labels_are_accepted(
    embedded: EmbeddedClassifier, policy: Policy, small_policy: Policy
) -> None:
    embedded.check_pack(policy)
    embedded.check_pack(small_policy)  # alt-profanity-check's "offensive"
    # In a cascade, or as a fallback, the LLM's own labels sit beside the embedded model's.
    mixed = with_labels(policy, "violence", ["modfleet:violence", "qwen3guard:Violent"])
    embedded.check_pack(with_labels(mixed, "hate", ["llama-guard:S10", "modfleet:hate"]))


def _with_glossary(policy: Policy, glossary: dict[str, str]) -> Policy:
    data = policy.model_dump(mode="json")
    return Policy.model_validate(data | {"text": data["text"] | {"glossary": glossary}})


async def test_slang_a_pack_writes_down_is_read_as_what_it_means(
    embedded: EmbeddedClassifier, policy: Policy
) -> None:
    # "kys" is slang the model never saw: allowed without a glossary, where "kill yourself" is
    # escalated.
    bare = _with_glossary(policy, {})
    slang = _with_glossary(policy, {"kys": "kill yourself"})
    texts = [normalise(t, 1000).text for t in ("kill yourself", "KYS", "#kys", "skys")]
    plain, *disguised = [
        slang.decide(v.policy_scores(slang)).action for v in await embedded.classify(texts, slang)
    ]
    assert plain != "allow"
    assert disguised == [plain, plain, "allow"]
    # Another pack (another tenant's) on the same worker does not read it.
    without = await embedded.classify(texts, bare)
    assert [bare.decide(v.policy_scores(bare)).action for v in without[1:]] == ["allow"] * 3


async def test_the_default_pack_reads_the_commonest_self_harm_slang(
    embedded: EmbeddedClassifier, policy: Policy
) -> None:
    texts = ["kill yourself", "kys", "i want to kill myself", "i want to unalive myself"]
    verdicts = await embedded.classify([normalise(t, 1000).text for t in texts], policy)
    kill, kys, myself, unalive = [policy.decide(v.policy_scores(policy)).action for v in verdicts]
    assert kill != "allow"
    assert (kys, unalive) == (kill, myself)
