"""Text that came from a file, made safe to show in a terminal.

Class labels, versions and training logs come from files that a Hub repository ships. Printed
as they are, an escape sequence could clear the screen or retitle the window, and a newline could
forge a line of output. `escaped` writes every such character as a visible escape instead.
"""

from __future__ import annotations

import re
import unicodedata

# Control characters (Cc: escape sequences, newlines, DEL), surrogates (Cs), line and
# paragraph separators (Zl, Zp), and Unicode's Bidi_Control characters (marks, embeddings,
# overrides, isolates), which reorder the text around them. Other format characters, such as
# the zero-width joiner of emoji sequences or a soft hyphen, show as they should.
_UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


# A version as the zoo, torch and friends write theirs: "0.1.0", "2.14.1+cu130".
_VERSION = re.compile(r"[0-9A-Za-z.+!-]{1,64}")


def is_version(text: object) -> bool:
    """Whether ``text`` is a short version string, safe to print as it is."""
    return isinstance(text, str) and _VERSION.fullmatch(text) is not None


def is_unprintable(character: str) -> bool:
    """Whether ``character`` changes what a terminal shows instead of showing itself."""
    return unicodedata.category(character) in _UNPRINTABLE_CATEGORIES or (
        character in _BIDI_CONTROLS
    )


def first_unprintable(text: str) -> str | None:
    """The first character of ``text`` that `is_unprintable`, or None."""
    return next((character for character in text if is_unprintable(character)), None)


def escaped(text: str, *, keep: str = "") -> str:
    """``text`` with every unprintable character written as a Python escape (``\\x1b``,
    ``\\n``, ``\\u202e``), except those in ``keep`` (e.g. ``"\\n"`` for a multi-line block
    the program itself laid out)."""
    if first_unprintable(text) is None:
        return text
    return "".join(
        repr(character)[1:-1] if is_unprintable(character) and character not in keep else character
        for character in text
    )


def shown(value: object, limit: int = 80) -> str:
    """``value``'s repr for a one-line message: escaped, and cut to about ``limit`` characters."""
    text = escaped(repr(value))
    return text if len(text) <= limit else f"{text[: limit - 4]}...{text[-1]}"


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message, or its type's name when it has none: what a
    one-line report can quote of a library's multi-line error."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
