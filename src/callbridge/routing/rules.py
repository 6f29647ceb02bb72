"""The caller's language, decided per call: pure rules, no I/O, no clock.

The rules run in a fixed order and the first one that answers wins
(``docs/configuration.md`` "Each caller in their own language"):

1. ``prefix``: the caller's number starts with a ``[languages.by_prefix]`` key; the longest
   matching prefix wins (``"+1"`` and ``"+1787"``: a Puerto Rico number takes ``+1787``);
2. ``menu``: ``languages.menu`` is set, so the caller is asked (a keypad menu, digit *n* = the
   *n*-th language); a digit outside the menu, or none before the menu gives up, falls through;
3. ``detected``: ``languages.caller = "auto"``; Palabra detects the language among
   ``languages.caller_detectable`` (the language stays ``"auto"`` until it is known);
4. ``default``: ``languages.caller``.

``LanguageRules.decide`` applies them. Without a digit and with a menu configured it answers
``MenuRequired``: the caller must be asked first (``callbridge.telephony.twiml.language_menu_twiml``),
then ``decide`` is called again with the digit Twilio reported (``parse_gather_digits``), or with
``digit=""`` when nothing was pressed.

Mid-call, ``*`` then a digit switches the caller to that menu language (``KeypadSwitch``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

import attrs

from callbridge.config.languages import AUTO, normalize

if TYPE_CHECKING:
    from callbridge.config import Config

__all__ = [
    "SWITCH_KEY",
    "CallerLanguage",
    "KeypadSwitch",
    "LanguageRules",
    "LanguageSource",
    "MenuOption",
    "MenuRequired",
]

# The key that starts a mid-call language switch: "*" then the menu digit.
SWITCH_KEY: Final = "*"
# After "*", the digit must follow within this many seconds, else the "*" is forgotten.
SWITCH_WINDOW_S: Final = 5.0


class LanguageSource(enum.StrEnum):
    """How a party's language was chosen; stored with the call and shown on its page."""

    PREFIX = "prefix"  # the caller's number matched [languages.by_prefix]
    MENU = "menu"  # the caller pressed a digit (keypad menu, or * then a digit mid-call)
    DETECTED = "detected"  # Palabra detected it (languages.caller = "auto")
    DEFAULT = "default"  # languages.caller, or the operator's first language
    OPERATOR_SPEAKS = "operator_speaks"  # the operator speaks the caller's language: no translation


@attrs.frozen
class CallerLanguage:
    """The caller's language and how it was chosen. ``language`` is ``"auto"`` while detection
    is pending (``source`` is then ``detected`` and ``detectable`` lists the candidates)."""

    language: str
    source: LanguageSource
    detectable: tuple[str, ...] = ()

    @property
    def pending(self) -> bool:
        """Detection has not reported a language yet."""
        return self.language == AUTO


@attrs.frozen
class MenuOption:
    """One keypad choice: ``digit`` (``"1"`` .. ``"9"``) selects ``language``."""

    digit: str
    language: str


@attrs.frozen
class MenuRequired:
    """No rule before the menu answered: ask the caller (``options`` in digit order)."""

    options: tuple[MenuOption, ...]


@attrs.frozen
class LanguageRules:
    """The caller-language rules of one configuration; build with ``from_config``.

    ``by_prefix`` is kept longest prefix first, so the first match is the longest."""

    by_prefix: tuple[tuple[str, str], ...] = ()
    menu: tuple[str, ...] = ()
    default: str = "en"
    detectable: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Config) -> LanguageRules:
        languages = config.languages
        return cls.build(
            by_prefix=languages.by_prefix,
            menu=languages.menu,
            default=languages.caller,
            detectable=languages.caller_detectable,
        )

    @classmethod
    def build(
        cls,
        *,
        by_prefix: Mapping[str, str] | None = None,
        menu: Sequence[str] = (),
        default: str = "en",
        detectable: Sequence[str] = (),
    ) -> LanguageRules:
        """Rules from plain values; codes are normalised (``pt_BR`` -> ``pt-br``)."""
        prefixes = sorted(
            ((_digits_only(p), normalize(lang)) for p, lang in (by_prefix or {}).items()),
            key=lambda item: (-len(item[0]), item[0]),
        )
        return cls(
            by_prefix=tuple(prefixes),
            menu=tuple(normalize(lang) for lang in menu),
            default=normalize(default),
            detectable=tuple(normalize(lang) for lang in detectable),
        )

    @property
    def options(self) -> tuple[MenuOption, ...]:
        return tuple(MenuOption(str(n), lang) for n, lang in enumerate(self.menu, start=1))

    def by_number(self, caller_number: str) -> str | None:
        """The language of the longest ``by_prefix`` key ``caller_number`` starts with."""
        number = _digits_only(caller_number)
        if not number:
            return None
        for prefix, language in self.by_prefix:
            if number.startswith(prefix):
                return language
        return None

    def menu_language(self, digit: str) -> str | None:
        """The menu language for ``digit`` (``"2"`` -> the second), or ``None``."""
        key = digit.strip()
        if len(key) != 1 or not key.isdigit() or key == "0":
            return None
        index = int(key) - 1
        return self.menu[index] if index < len(self.menu) else None

    def decide(self, caller_number: str, digit: str | None = None) -> CallerLanguage | MenuRequired:
        """Apply the rules in order (see the module docstring).

        ``digit`` is ``None`` before the menu ran, the digit pressed after it, or ``""`` when
        the caller pressed nothing. Never raises: odd numbers and digits just match no rule."""
        by_number = self.by_number(caller_number)
        if by_number is not None:
            return CallerLanguage(by_number, LanguageSource.PREFIX)
        if self.menu:
            if digit is None:
                return MenuRequired(self.options)
            chosen = self.menu_language(digit)
            if chosen is not None:
                return CallerLanguage(chosen, LanguageSource.MENU)
        return self.fallback()

    def without_menu(self, caller_number: str) -> CallerLanguage:
        """The rules without asking the caller: the number's prefix, else ``fallback``."""
        by_number = self.by_number(caller_number)
        if by_number is not None:
            return CallerLanguage(by_number, LanguageSource.PREFIX)
        return self.fallback()

    def fallback(self) -> CallerLanguage:
        """The last two rules: detection when ``caller = "auto"``, else the default."""
        if self.default == AUTO:
            return CallerLanguage(AUTO, LanguageSource.DETECTED, self.detectable)
        return CallerLanguage(self.default, LanguageSource.DEFAULT)

    def detected(self, language: str) -> CallerLanguage:
        """What detection reported, as the caller's language (source ``detected``)."""
        return CallerLanguage(normalize(language), LanguageSource.DETECTED)


def _digits_only(number: str) -> str:
    """``"+7 (495) 123-45-67"`` -> ``"+74951234567"``: prefixes compare on ``+`` and digits."""
    return "".join(ch for ch in number.strip() if ch.isdigit() or ch == "+")


@attrs.define
class KeypadSwitch:
    """Recognises ``*`` then a menu digit among a caller's mid-call DTMF keys.

    Feed each key Twilio reports (the media stream's ``dtmf`` event, one key per event) with the
    time it arrived (s, any monotonic clock). ``press`` returns the chosen ``CallerLanguage``
    (source ``menu``) when a digit completes a switch, else ``None``. A ``*`` is forgotten after
    ``window_s`` or at any key that is not a menu digit; a digit without ``*`` does nothing."""

    rules: LanguageRules
    window_s: float = SWITCH_WINDOW_S
    _armed_at: float | None = None

    def press(self, key: str, now: float) -> CallerLanguage | None:
        armed, self._armed_at = self._armed_at, None
        if key == SWITCH_KEY:
            self._armed_at = now
            return None
        if armed is None or now - armed > self.window_s:
            return None
        language = self.rules.menu_language(key)
        return CallerLanguage(language, LanguageSource.MENU) if language is not None else None
