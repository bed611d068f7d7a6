"""Catalog and user text made safe to place in Markdown (the app's captions, headers, messages, tables).

Streamlit renders GitHub-flavoured Markdown with LaTeX (`$...$`), emoji shortcodes and colour
directives (`:red[...]`) in almost every element. A title such as `Shoe ![p](http://host/t.png)` would
make every viewer's browser fetch that address, and `[text](http://...)` would become a link. `plain`
backslash-escapes every character that could start such a construct, so the text shows exactly as
written and nothing in it is fetched, linked, formatted or typeset; ordinary titles (`Men's T-Shirt 2.0`)
are left as they are.
"""

from __future__ import annotations

import re

_ALWAYS = re.compile(r"([\\`*\[\]<$~|])")  # code, emphasis, links and images, HTML and autolinks, LaTeX, tables
_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")  # emphasis; not inside a word (color_hist)
_BARE_LINK = re.compile(r"(?i)(?<=[a-z])(:)(?=//)|(?<=\bwww)(\.)")  # http://..., www.... (GFM autolinks)
_SHORTCODE = re.compile(r":(?=[\w+-]+:)")  # :smile:, :material/icon:
_ENTITY = re.compile(r"&(?=#?\w+;)")  # &lt; &#60;
_LINE_START = re.compile(  # a heading, quote, list item or rule at the start ("--device" is none of them)
    r"^(\s*)(#{1,6}(?=\s|$)|>|[-+](?=\s|$)|-{3,}(?=\s*$)|\d{1,9}(?=[.)](?:\s|$)))"
)


def plain(text: object) -> str:
    """`text` escaped for Markdown so that it renders as itself, on one line."""
    value = " ".join(str(text).splitlines()) if text is not None else ""
    value = _ALWAYS.sub(r"\\\1", value)
    value = _UNDERSCORE.sub(r"\\_", value)
    value = _BARE_LINK.sub(lambda m: "\\" + (m.group(1) or m.group(2)), value)
    value = _SHORTCODE.sub(r"\\:", value)
    value = _ENTITY.sub(r"\\&", value)
    return _LINE_START.sub(_escape_start, value)


def _escape_start(match: re.Match) -> str:
    space, mark = match.group(1), match.group(2)
    return f"{space}{mark}\\" if mark[0].isdigit() else f"{space}\\{mark}"
