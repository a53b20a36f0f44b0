"""Words in several languages: one message catalogue per language, as data.

A catalogue is ``derive/locales/<lang>.json``: a flat object from message keys
(dotted, grouped by section: ``derivation.title``) to text with ``str.format`` fields.
Templates get a :class:`Translator` as ``t``; Python facts carry :class:`Message`
(a key and its fields) instead of finished sentences. A new language is a new file.

Catalogue texts may contain a little inline HTML (``<code>``, ``<em>``); they are
ours and trusted. Fields are escaped when the result is HTML, unless they are markup
themselves (formulas rendered to SVG).
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from markupsafe import Markup

from .errors import InputError

DEFAULT = "en"


@cache
def languages() -> tuple[str, ...]:
    """The languages with a catalogue, sorted."""
    folder = resources.files("derive") / "locales"
    return tuple(
        sorted(
            item.name[: -len(".json")] for item in folder.iterdir() if item.name.endswith(".json")
        )
    )


@cache
def catalogue(lang: str) -> Mapping[str, str]:
    if lang not in languages():
        raise InputError("unknown language; choose " + " or ".join(languages()), lang)
    text = (resources.files("derive") / "locales" / f"{lang}.json").read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def fields_of(text: str) -> frozenset[str]:
    """The names of the format fields in a catalogue text."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(text) if name)


@dataclass(frozen=True)
class Message:
    """A sentence still to be put into words: a catalogue key and its fields.

    ``str(message)`` is the English text (for the command line and the JSON).
    """

    key: str
    fields: tuple[tuple[str, Any], ...] = field(default=())

    @classmethod
    def of(cls, key: str, **fields: Any) -> Message:
        return cls(key, tuple(sorted(fields.items())))

    def __str__(self) -> str:
        return translator(DEFAULT).text(self)


@dataclass(frozen=True)
class Translator:
    """``t("key", name=value)`` -> the text in this language (HTML-safe markup)."""

    lang: str

    def _lookup(self, key: str | Message, fields: Mapping[str, Any]) -> tuple[str, dict]:
        if isinstance(key, Message):
            fields = {**dict(key.fields), **fields}
            key = key.key
        try:
            return catalogue(self.lang)[key], dict(fields)
        except KeyError:
            raise KeyError(f"no message {key!r} in the {self.lang} catalogue") from None

    def __call__(self, key: str | Message, /, **fields: Any) -> Markup:
        text, values = self._lookup(key, fields)
        values = {
            name: self(value) if isinstance(value, Message) else _named(name, value)
            for name, value in values.items()
        }
        return Markup(text).format(**values)

    def text(self, key: str | Message, /, **fields: Any) -> str:
        """The same as plain text (for messages without markup)."""
        text, values = self._lookup(key, fields)
        values = {
            name: self.text(value) if isinstance(value, Message) else value
            for name, value in values.items()
        }
        return text.format(**values)

    def join(self, messages: Any, separator_key: str = "list.separator") -> Markup:
        """Several messages in words, separated as the language separates list items."""
        return self(separator_key).join(self(message) for message in messages)

    def or_else(self, key: str, fallback: str) -> Markup | str:
        """The catalogue's text for `key`, or `fallback` where this language has none: a
        model or loss registered without catalogue entries shows its entry's own title."""
        return self(key) if key in catalogue(self.lang) else fallback

    def raw(self, key: str) -> str:
        """The catalogue text itself, fields unfilled (for text filled in elsewhere)."""
        return self._lookup(key, {})[0]

    def quantity(self, name: str) -> Markup | str:
        """A checked value's name in words: "W (update)" is the update of W."""
        if name.endswith(UPDATE_SUFFIX):
            return self("quantity.update", name=name.removesuffix(UPDATE_SUFFIX))
        return readable_name(name)

    def count(self, key: str, n: int, /, **fields: Any) -> Markup:
        """``key.one`` for n = 1, else ``key.other``; n is the field ``n`` unless given."""
        fields.setdefault("n", n)
        return self(f"{key}.{'one' if n == 1 else 'other'}", **fields)


UPDATE_SUFFIX = " (update)"  # the name derive.training gives an update's check

_SUBSCRIPT = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_INDEXED = re.compile(r"(?<=[A-Za-z])_(\d+)\b")
# Message fields that hold a parameter's or a quantity's name (never a file name)
_NAME_FIELDS = frozenset({"parameter", "name", "quantity", "names"})


def readable_name(text: str) -> str:
    """Parameter names for running text: W_1 -> W₁, dL/dW_12 -> dL/dW₁₂."""
    return _INDEXED.sub(lambda match: match.group(1).translate(_SUBSCRIPT), text)


def _named(field: str, value: Any) -> Any:
    if field in _NAME_FIELDS and isinstance(value, str) and not isinstance(value, Markup):
        return readable_name(value)
    return value


@cache
def translator(lang: str = DEFAULT) -> Translator:
    catalogue(lang)  # refuse unknown languages here, with the one-line error
    return Translator(lang)
