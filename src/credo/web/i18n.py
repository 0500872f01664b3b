"""A small message catalog: English text is the key, Simplified Chinese its translation.

A text missing from a catalog is shown in English (the fallback); values are
filled in with ``str.format`` after translation.

>>> translate("zh", "Sign in")
'登录'
>>> translate("zh", "not translated yet")
'not translated yet'
>>> translate("en", "{n} days left", n=3)
'3 days left'
"""

from __future__ import annotations

from typing import Any

from credo.web.messages_zh import ZH

LANGUAGES: dict[str, str] = {"en": "English", "zh": "简体中文"}
DEFAULT = "en"
# English needs entries only where the key is not itself the text.
EN: dict[str, str] = {
    "outcome-help-upheld": "the record stands and keeps counting",
    "outcome-help-overturned": "the record is void from the decision on; the listings it caused end",
    "outcome-help-amended": "the record is void and a corrected record replaces it",
}
CATALOGS: dict[str, dict[str, str]] = {"en": EN, "zh": ZH}


def translate(lang: str, text: str, **values: Any) -> str:
    out = CATALOGS.get(lang, {}).get(text, text)
    if values:
        try:
            return out.format(**values)
        except (KeyError, IndexError, ValueError):
            return text.format(**values)
    return out


def negotiate(cookie: str | None, accept_language: str) -> str:
    """The chosen language: the cookie, else the browser's first known language, else English.

    >>> negotiate(None, "zh-CN,zh;q=0.9,en;q=0.8")
    'zh'
    >>> negotiate("en", "zh-CN")
    'en'
    >>> negotiate(None, "fr-FR, de")
    'en'
    """
    if cookie in LANGUAGES:
        return str(cookie)
    weighted: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and q > 0:
            weighted.append((-q, i, primary))
    return sorted(weighted)[0][2] if weighted else DEFAULT
