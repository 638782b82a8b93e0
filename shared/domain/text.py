"""Rules for free text in request bodies (prompts, speech input).

- C0 control characters (newline and tab excepted), DEL and the C1 controls U+0080-U+009F are
  *stripped*: they carry no meaning in a prompt and only confuse logs and terminals.
- Lone surrogates (``"\\ud800"`` in JSON) are *refused*: they are not Unicode text and cannot be
  stored or echoed back.
- After cleaning, the text must hold at least one visible character: a prompt of only white
  space, zero-width or other format characters is refused.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Categories that draw nothing: separators (Z*), controls, format (zero-width, bidi marks), unassigned.
_INVISIBLE = ("Z", "C")


def clean_text(v: Any) -> Any:
    """Strip control characters (newlines and tabs survive) and surrounding white space;
    refuse lone surrogates and text with nothing visible in it."""
    if not isinstance(v, str):
        return v
    if _SURROGATE.search(v):
        raise ValueError("contains a lone surrogate (not valid Unicode text)")
    v = _CONTROL.sub("", v).strip()
    if v and not has_visible(v):
        raise ValueError("must contain visible characters (only white space or zero-width characters given)")
    return v


def has_visible(text: str) -> bool:
    return any(not unicodedata.category(c).startswith(_INVISIBLE) for c in text)


def check_identifier(v: Any) -> Any:
    """A short identifier (voice ids): no surrogates, no control characters."""
    if isinstance(v, str) and (_SURROGATE.search(v) or _CONTROL.search(v)):
        raise ValueError("contains characters an identifier cannot hold")
    return v
