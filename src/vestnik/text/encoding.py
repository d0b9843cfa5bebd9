"""Text that cannot be written as UTF-8 is refused before any work starts.

A lone UTF-16 surrogate is what a client sends after cutting a string inside an emoji; Python
keeps it in a `str`, so it passes every check until the first UTF-8 write (a log line, a hash)
fails deep in the pipeline. Undecodable bytes of a command line arrive the same way
(`surrogateescape`, U+DC80..U+DCFF).
"""

from __future__ import annotations

CONTEXT_CHARS = 20


def encoding_problem(text: str) -> str | None:
    """Why `text` cannot be encoded as UTF-8, naming the first bad character; None if it can."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        position, code = exc.start, ord(text[exc.start])
        before = text[max(0, position - CONTEXT_CHARS):position]
        before = before.encode("utf-8", "replace").decode("utf-8")
        if 0xDC80 <= code <= 0xDCFF:
            what = f"the byte 0x{code - 0xDC00:02X}, which is not UTF-8"
        else:
            what = f"a lone surrogate U+{code:04X} (half of a UTF-16 pair, e.g. a cut emoji)"
        return (
            f"the text is not valid Unicode: character {position + 1:,} of {len(text):,} is "
            f"{what}, after {before!r}; send the text as valid UTF-8"
        )
    return None
