"""Each call's languages and how they were chosen: on the record, in the store (including a file
written before the columns existed), in the API rows and in the text export."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import trio

from callbridge.routing import LanguageSource
from callbridge.transcripts.export import export_text
from callbridge.transcripts.store import DB_NAME, TranscriptStore

from .helpers import make_record

# The calls table as schema version 1 created it.
V1_CALLS = """
CREATE TABLE calls (
    id TEXT PRIMARY KEY,
    caller_sid TEXT, operator_sid TEXT, caller_number TEXT, operator_number TEXT,
    caller_language TEXT, operator_language TEXT,
    status TEXT NOT NULL,
    received_at REAL NOT NULL, answered_at REAL, ended_at REAL, end_reason TEXT,
    updated_at REAL NOT NULL
);
"""


class TestRecord:
    def test_defaults_to_todays_rule(self) -> None:
        snapshot = make_record().snapshot()
        assert snapshot["caller_language_source"] == "default"
        assert snapshot["operator_language_source"] == "default"

    def test_detected_language_and_untranslated_operator(self) -> None:
        record = make_record(caller_language="auto")
        record.set_caller_language("ru", LanguageSource.DETECTED)
        record.set_operator_language("ru", LanguageSource.OPERATOR_SPEAKS)
        snapshot = record.snapshot()
        assert (snapshot["caller_language"], snapshot["caller_language_source"]) == (
            "ru",
            "detected",
        )
        assert snapshot["operator_language_source"] == "operator_speaks"
        assert type(snapshot["operator_language_source"]) is str  # plain text for SQLite/JSON


class TestStore:
    async def test_sources_are_stored_and_listed(self, tmp_path: Path) -> None:
        store = TranscriptStore.at(tmp_path)
        store.start()
        try:
            record = make_record()
            record.set_caller_language("es", LanguageSource.MENU)
            with trio.fail_after(10):
                store.save_call(record.snapshot())
                [listed] = await store.list_calls(10)
                found = await store.get_call("call-1")
        finally:
            await store.close()
        assert (listed["caller_language"], listed["caller_language_source"]) == ("es", "menu")
        assert found is not None and found["call"]["operator_language_source"] == "default"

    async def test_a_file_from_before_gets_the_columns_and_keeps_its_calls(
        self, tmp_path: Path
    ) -> None:
        conn = sqlite3.connect(tmp_path / DB_NAME)
        conn.executescript(V1_CALLS)
        conn.execute(
            "INSERT INTO calls (id, caller_language, operator_language, status, received_at, "
            "updated_at) VALUES ('old', 'en', 'es', 'ended', 1.0, 1.0)"
        )
        conn.execute("PRAGMA user_version = 1")
        conn.commit()
        conn.close()
        store = TranscriptStore.at(tmp_path)
        store.start()
        try:
            with trio.fail_after(10):
                store.save_call(make_record("new", caller_language_source="prefix").snapshot())
                old = await store.get_call("old")
                new = await store.get_call("new")
        finally:
            await store.close()
        assert old is not None and old["call"]["caller_language"] == "en"
        assert old["call"]["caller_language_source"] is None
        assert new is not None and new["call"]["caller_language_source"] == "prefix"
        check = sqlite3.connect(tmp_path / DB_NAME)
        assert check.execute("SELECT max(version) FROM schema_version").fetchone() == (3,)
        check.close()


class TestExport:
    def test_text_header_says_how_languages_were_chosen(self) -> None:
        call = {
            "id": "c1",
            "status": "ended",
            "caller_language": "ru",
            "caller_language_source": "prefix",
            "operator_language": "ru",
            "operator_language_source": "operator_speaks",
        }
        first = export_text(call, []).splitlines()[0]
        assert (
            first == "Call c1: caller (ru by prefix) <-> operator (ru, untranslated), status ended"
        )

    def test_default_and_unknown_sources_show_the_language_alone(self) -> None:
        call = {"id": "c1", "status": "ended", "caller_language": "en", "operator_language": "es"}
        call["caller_language_source"] = "default"
        assert export_text(call, []).startswith("Call c1: caller (en) <-> operator (es)")
