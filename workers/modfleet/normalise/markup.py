"""A post its platform writes in HTML, read as the platform's readers see it.

A browser shows no tag, comment or script, and shows a character reference as its character:
``id<b></b>iot``, ``id<!-- -->iot`` and ``&#105;diot`` all read "idiot", and the model must read
them so. Resiliparse renders the text (Lexbor's HTML5 parser, in C++): what every reader sees,
what some readers see (an image's alternative text, a form field's text, ``noscript``, and
hidden elements, which a spoiler or a content warning reveals on a click), and each link's
target, which is what a spam or scam post is about. Blocks end in a line end, which ends a bidi
paragraph as a block does in a browser.
"""

from __future__ import annotations

from typing import Literal

from resiliparse.extract.html2text import extract_plain_text

TextFormat = Literal["plain", "html"]


def rendered(html: str, reach: int) -> tuple[str, bool]:
    """The text of ``html`` as a browser shows it, and whether any was left out. Of a body over
    ``2 * reach`` characters, its first and last ``reach`` are rendered, each on its own, so
    that a post of a million nested elements costs what the pack reads, not what it holds."""
    return rendered_ends(*ends(html, reach))


def ends(html: str, reach: int) -> tuple[str, str | None]:
    """What of ``html`` is rendered: all of it (and None), or its first and last ``reach``."""
    if len(html) <= 2 * reach:
        return html, None
    return html[:reach], html[-reach:]


def rendered_ends(head: str, tail: str | None) -> tuple[str, bool]:
    """``rendered`` of what ``ends`` kept: each end on its own, a line end between them."""
    if tail is None:
        return _shown(head), False
    return _shown(head) + "\n" + _shown(tail), True


def _shown(html: str) -> str:
    shown = _rendered_by_lexbor(html)
    if shown.isascii():
        # No bidi control, so its block ends end no override: as spaces, they let normalise
        # take its fast path for printable ASCII (the same text, about 6 us less a post).
        return shown.replace("\n", " ").replace("\t", " ")
    return shown


def _rendered_by_lexbor(html: str) -> str:
    return extract_plain_text(
        html,
        preserve_formatting=True,  # line ends between blocks: bidi paragraphs
        main_content=False,  # all of it: the post is the content
        list_bullets=False,
        alt_texts=True,
        links=True,
        form_fields=True,
        noscript=True,
        hidden_elements=True,
    )
