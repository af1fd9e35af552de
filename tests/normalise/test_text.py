from hypothesis import given
from hypothesis import strategies as st

from modfleet.normalise import normalise


def test_invisible_characters_and_spacing_do_not_change_the_hash() -> None:
    plain = normalise("buy cheap pills now", 1000)
    dodged = normalise("  buy\u200b cheap\n\tpills \u2060now ", 1000)
    assert dodged.text == "buy cheap pills now"
    assert dodged.content_hash == plain.content_hash


def test_compatibility_forms_fold_to_the_same_text() -> None:
    fullwidth = "\uff46\uff52\uff45\uff45\u3000\uff4d\uff4f\uff4e\uff45\uff59"
    assert normalise(fullwidth, 1000).text == "free money"


def test_different_texts_hash_differently() -> None:
    assert normalise("hello there", 100).content_hash != normalise("hello where", 100).content_hash


def test_long_text_is_cut_and_says_so() -> None:
    result = normalise("a" * 50, 10)
    assert result.text == "a" * 10
    assert result.truncated
    assert not normalise("short", 10).truncated


def test_huge_body_is_cut_without_folding_all_of_it() -> None:
    result = normalise("x" * 10_000_000, 100)
    assert len(result.text) == 100
    assert result.truncated


_ASCII_AND_FRIENDS = st.text(
    alphabet=st.sampled_from([*"ab Z9!~", " ", "\t", "\n", "\x1f", "\x7f", "\u00e9", "\u200b"]),
    max_size=40,
)


# max_chars of 11 and up: the appended character must not trigger the raw cut (4x the limit).
@given(_ASCII_AND_FRIENDS, st.integers(min_value=11, max_value=50))
def test_the_printable_ascii_shortcut_gives_the_general_paths_text_and_hash(
    text: str, max_chars: int
) -> None:
    # The general path, forced by a character the shortcut does not take; its hash is
    # compared on the same visible text.
    fast = normalise(text, max_chars)
    slow = normalise(text + "\u200b", max_chars)
    assert (fast.text, fast.content_hash) == (slow.text, slow.content_hash)
    assert fast.truncated == slow.truncated
