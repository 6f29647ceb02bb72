"""Each caller in their own language: the rules that pick it, and language-aware operator routing.

Pure and sans-IO (nothing here touches a socket or a clock), so the webhooks, the dialer and a
shared cluster pool can all use the same decisions (the keypad menu's TwiML and prompts are
Twilio's side of it: ``callbridge.telephony.language_menu``):

- ``rules``: the caller's language per call (``prefix``, ``menu``, ``detected``, ``default``) and
  the mid-call ``*digit`` switch;
- ``pool``: operators with languages, the ``OperatorPool`` interface and its in-process pool, and
  the ``BridgePlan`` (translate, or bridge as is when the operator speaks the caller's language).

The language codes Palabra knows and what ``check-config`` rejects about all of the above are in
``callbridge.config.languages``.
"""

from __future__ import annotations

from callbridge.config.languages import AUTO, is_party_language, normalize, same_language
from callbridge.routing.pool import (
    BridgePlan,
    LanguageOperatorPool,
    Operator,
    OperatorPick,
    OperatorPool,
    operators_from_config,
    plan_bridge,
)
from callbridge.routing.rules import (
    CallerLanguage,
    KeypadSwitch,
    LanguageRules,
    LanguageSource,
    MenuOption,
    MenuRequired,
)

__all__ = [
    "AUTO",
    "BridgePlan",
    "CallerLanguage",
    "KeypadSwitch",
    "LanguageOperatorPool",
    "LanguageRules",
    "LanguageSource",
    "MenuOption",
    "MenuRequired",
    "Operator",
    "OperatorPick",
    "OperatorPool",
    "is_party_language",
    "normalize",
    "operators_from_config",
    "plan_bridge",
    "same_language",
]
