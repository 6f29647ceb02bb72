"""Regenerate config.toml from the schema in callbridge.config: every key, its default, its doc.

Run after adding a key: `.venv/bin/python scripts/gen_config_toml.py > config.toml`.
tests/test_config.py checks that config.toml and the schema agree.
"""

from __future__ import annotations

import json
import typing
from typing import Any

import attrs

from callbridge.config import Config, Secret

HEADER = """\
# callbridge configuration. Every key is shown with its default.
# Any key can be overridden by the environment as CALLBRIDGE_<SECTION>_<KEY>
# (e.g. CALLBRIDGE_PALABRA_CHUNK_MS=640). The seed demo's .env variables keep working:
# HOST, PORT, TWILIO_ACCOUNT_SID, TWILIO_NUMBER, OPERATOR_NUMBER, SOURCE_LANGUAGE, TARGET_LANGUAGE.
# Secrets come ONLY from the environment (never write them here):
# TWILIO_AUTH_TOKEN, PALABRA_API_KEY, PALABRA_CLIENT_ID, PALABRA_CLIENT_SECRET, CALLBRIDGE_WEB_TOKEN.
"""


def toml_value(value: Any) -> str:
    if value is None:
        return '"off"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(value)


# Arrays of tables ([[section.key]]) are empty by default; config.toml shows them as comments.
TABLE_LIST_EXAMPLES = {
    "operators.team": [
        "[[operators.team]]",
        'number = "+15550200001"',
        'languages = ["es", "en"]',
        'name = "Lucía"',
    ],
}


def _is_table_list(hint: Any) -> bool:
    args = typing.get_args(hint)
    return typing.get_origin(hint) is list and len(args) == 1 and attrs.has(args[0])


def emit(node: Any, name: str, out: list[str]) -> None:
    cls = type(node)
    hints = typing.get_type_hints(cls)
    nested: list[tuple[str, Any, str]] = []
    tables: list[tuple[str, dict[str, str], str]] = []
    out.append(f"\n[{name}]")
    for field in attrs.fields(cls):
        value = getattr(node, field.name)
        doc = field.metadata.get("doc", "")
        if attrs.has(hints[field.name]):
            nested.append((field.name, value, doc))
            continue
        if isinstance(value, dict):
            tables.append((field.name, value, doc))
            continue
        if Secret in typing.get_args(hints[field.name]):
            out.append(f"# {field.name}: secret, from the environment only: {doc}")
            continue
        if value is None:
            out.append(f"# {field.name} = ...  # {doc} (unset by default)")
            continue
        if _is_table_list(hints[field.name]):
            out.append(f"# {doc}. For example:")
            out.extend(f"# {line}" for line in TABLE_LIST_EXAMPLES[f"{name}.{field.name}"])
            continue
        out.append(f"# {doc}")
        out.append(f"{field.name} = {toml_value(value)}")
    for sub, value, doc in nested:
        out.append(f"\n# {doc}; unset keys use the [{name}] value.")
        emit(value, f"{name}.{sub}", out)
    for sub, value, doc in tables:
        out.append(f"\n# {doc}")
        out.append(f"[{name}.{sub}]")
        out.extend(f"{k} = {toml_value(v)}" for k, v in value.items())


def main() -> None:
    out = [HEADER.rstrip()]
    config = Config()
    for field in attrs.fields(Config):
        emit(getattr(config, field.name), field.name, out)
    print("\n".join(out))


if __name__ == "__main__":
    main()
