"""The demo explains its figures and says where to look while it stays up."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from callbridge.sim.demo import Match, Narrator, Summary, _latency_line
from callbridge.sim.demo_guide import LEGEND, keep_running_lines, wait_for_enter

TERMS = [term for term, _ in LEGEND]


def explained(text: str) -> list[str]:
    return [term for term in TERMS if term in text]


def test_every_figure_of_an_utterance_line_is_in_the_legend() -> None:
    line = _latency_line(
        {"translated_at": 101.0, "played_at": 103.0}, 100.0, Match(0.97, 0.1, 101.5), "operator"
    )
    for term in ("translation received", "first translated audio heard", "heard to the end",
                 "found in"):  # fmt: skip
        assert term in line and term in TERMS


def test_the_media_lines_figures_are_in_the_legend_and_the_summary_prints_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Summary, "_utterances", lambda self, say: [])  # no recordings here
    summary = Summary(
        twilio={"streams": [{"party": "caller", "underrun_frames": 3}], "turns": []},
        api={},
        ended={"reason": "caller_hangup", "media": {"caller": {"frames_in": 5, "marks_in": 2}}},
        script=None,
        out=Path("unused"),
        call_id="c1",
    )
    out = io.StringIO()
    with redirect_stdout(out):
        assert summary.print(Narrator()) == []
    text = out.getvalue()
    assert "underrun" in text and "marks" in text
    legend = text[text.index("How to read the figures:") :]
    for term in TERMS:
        assert term in legend


def test_keep_running_says_where_the_metrics_are() -> None:
    lines = "\n".join(keep_running_lines("http://127.0.0.1:1", "http://t", "http://p", "tok"))
    assert "curl -H 'Authorization: Bearer tok' http://127.0.0.1:1/metrics" in lines
    assert "http://127.0.0.1:1/calls" in lines


def test_without_a_terminal_the_demo_does_not_wait_for_enter() -> None:
    # pytest's stdin is not a terminal, like CI's: the demo must stop by itself.
    assert wait_for_enter("press Enter") is False
