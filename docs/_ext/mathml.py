"""MkDocs hook: every formula rendered to MathML when the site is built.

``pymdownx.arithmatex`` (``generic: true``) leaves each formula in the page as TeX, inline as
``<span class="arithmatex">\\(...\\)</span>`` and displayed as
``<div class="arithmatex">\\[...\\]</div>``. This hook replaces each with the MathML that
``latex2mathml`` makes of it, which browsers draw natively: the built site shows its math
with no script and no network. A formula the converter cannot read is a warning that names
the page and the formula (an error under ``mkdocs build --strict``), and stays as TeX.
"""

from __future__ import annotations

import html
import logging
import re

from latex2mathml.converter import convert

log = logging.getLogger("mkdocs.hooks.mathml")

_FORMULA = re.compile(
    r'<span class="arithmatex">\\\((?P<inline>.*?)\\\)</span>'
    r'|<div class="arithmatex">\s*\\\[(?P<block>.*?)\\\]\s*</div>',
    re.DOTALL,
)
# What latex2mathml leaves of a command it does not know, or of an alignment mark it does not
# handle: a literal backslash or ampersand drawn as an identifier.
_UNREAD = re.compile(r"<mi>(\\[A-Za-z]*|&amp;|&)</mi>")
# TeX the converter reads only when spelled another way.
_SPELLINGS = (
    (re.compile(r"\\arg\s*\\(min|max)(?![A-Za-z])"), r"\\arg\1"),
    (re.compile(r"\\(arg|sgn)(?![A-Za-z])"), r"\\operatorname{\1}"),
)


def to_mathml(tex: str, display: str) -> str:
    """The MathML of one formula.

    Args:
        tex: the formula's TeX, without its delimiters and HTML-unescaped.
        display: ``"inline"`` or ``"block"``.

    Returns:
        A ``<math>`` element (display block ones wrapped in a ``<div class="arithmatex">``).

    Raises:
        ValueError: when the converter fails or leaves a command it could not read.

    Example:
        >>> "<msup><mi>x</mi><mn>2</mn></msup>" in to_mathml("x^2", "inline")
        True
    """
    for pattern, spelling in _SPELLINGS:
        tex = pattern.sub(spelling, tex)
    try:
        mathml = convert(tex, display=display)
    except Exception as error:  # the converter raises many kinds of errors
        raise ValueError(f"latex2mathml could not convert it: {error}") from error
    unread = _UNREAD.search(mathml)
    if unread:
        raise ValueError(f"latex2mathml left {unread.group(1)!r} unconverted")
    return f'<div class="arithmatex">{mathml}</div>' if display == "block" else mathml


def on_page_content(html_text: str, page, config, files) -> str:
    """MkDocs' page-content event: the page's HTML with its formulas as MathML."""

    def replace(match: re.Match) -> str:
        display = "inline" if match.group("inline") is not None else "block"
        tex = html.unescape(match.group(display))
        try:
            return to_mathml(tex, display)
        except ValueError as error:
            log.warning("%s: formula %r: %s", page.file.src_uri, tex, error)
            return match.group(0)

    return _FORMULA.sub(replace, html_text)
