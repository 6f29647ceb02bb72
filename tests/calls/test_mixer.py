"""callbridge.calls.mixer: exact gains and ducking, clipping, utterance order, overflow, modes."""

from __future__ import annotations

import numpy as np
import pytest

from callbridge.audio import db_to_gain
from callbridge.calls.mixer import ListenerMixer, MixedFrame
from callbridge.config import MediaConfig
from callbridge.roles import Direction

N = 160
RAMP = np.arange(1, N + 1, dtype=np.float64) / N


def const(value: int, n: int = N) -> np.ndarray:
    return np.full(n, value, dtype=np.int16)


def seq(start: int, n: int) -> np.ndarray:
    """Distinct sample values, so any gap, overlap or reordering shows."""
    return np.arange(start, start + n, dtype=np.int16)


def expected(
    orig: np.ndarray, gain: float | np.ndarray, trans: np.ndarray | None = None, tgain: float = 0.0
) -> np.ndarray:
    """The documented formula: clip(rint(original * gain + translation * translation_gain))."""
    acc = orig.astype(np.int16) * gain
    if trans is not None:
        acc = acc + trans.astype(np.float64) * tgain
    return np.clip(np.rint(acc), -32768, 32767).astype(np.int16)


def ramp(prev_db: float | None, new_db: float | None) -> np.ndarray:
    prev, new = db_to_gain(prev_db), db_to_gain(new_db)
    return prev + (new - prev) * RAMP


def voice(**kw: object) -> ListenerMixer:
    args: dict[str, object] = {
        "mode": "voice",
        "translation_gain_db": 0.0,
        "original_gain_db": -6.0,
        "original_duck_gain_db": -18.0,
        "queue_limit_s": 20.0,
    }
    args.update(kw)
    return ListenerMixer(**args)  # type: ignore[arg-type]


def translation_only(**kw: object) -> ListenerMixer:
    """Original off and translation at unity gain: output == translation samples exactly."""
    return voice(original_gain_db=None, original_duck_gain_db=None, **kw)


def frames(mixer: ListenerMixer, count: int) -> list[MixedFrame]:
    return [mixer.next_frame() for _ in range(count)]


class TestGains:
    def test_original_alone_plays_at_original_gain(self) -> None:
        mixer = voice()
        mixer.push_original(const(1000))
        frame = mixer.next_frame()
        assert frame.pcm.dtype == np.int16
        assert frame.pcm.shape == (N,)
        assert frame.pcm.tolist() == [501] * N  # 1000 * 10**(-6/20) = 501.19
        assert not frame.ducked
        assert frame.started == frame.finished == ()

    def test_ducking_ramps_in_one_frame_then_is_exact(self) -> None:
        mixer = voice()
        mixer.push_translation("u1", const(2000, 3 * N), last=True)
        for _ in range(4):
            mixer.push_original(const(1000))
        f1, f2, f3, f4 = frames(mixer, 4)
        # Frame 1: original ramps from -6 dB to -18 dB, translation at 0 dB on top.
        assert np.array_equal(f1.pcm, expected(const(1000), ramp(-6, -18), const(2000), 1.0))
        assert f1.pcm[-1] == round(1000 * db_to_gain(-18) + 2000)
        assert f1.pcm[0] == round(
            1000 * (db_to_gain(-6) + (db_to_gain(-18) - db_to_gain(-6)) / N) + 2000
        )
        # Frames 2 and 3: flat ducked gain.
        assert f2.pcm.tolist() == f3.pcm.tolist() == [2126] * N  # 1000*0.12589 + 2000
        assert [f1.ducked, f2.ducked, f3.ducked] == [True, True, True]
        # Frame 4: translation over, original ramps back up to -6 dB.
        assert not f4.ducked
        assert np.array_equal(f4.pcm, expected(const(1000), ramp(-18, -6)))
        assert f4.pcm[-1] == 501

    def test_translation_gain_applies(self) -> None:
        mixer = voice(translation_gain_db=-6.0, original_gain_db=None, original_duck_gain_db=None)
        mixer.push_translation("u1", const(1000), last=True)
        assert mixer.next_frame().pcm.tolist() == [501] * N

    def test_gains_none_mean_off(self) -> None:
        mixer = voice(translation_gain_db=None, original_gain_db=None, original_duck_gain_db=None)
        mixer.push_original(const(1000, 3 * N))
        mixer.push_translation("u1", const(3000), last=True)
        for frame in frames(mixer, 3):
            assert not frame.pcm.any()

    def test_duck_off_mutes_original_under_translation(self) -> None:
        mixer = voice(original_duck_gain_db=None)
        mixer.push_translation("u1", const(0, 2 * N), last=True)
        mixer.push_original(const(1000, 2 * N))
        f1, f2 = frames(mixer, 2)
        assert np.array_equal(f1.pcm, expected(const(1000), ramp(-6, None)))
        assert f1.pcm[-1] == 0
        assert not f2.pcm.any()

    @pytest.mark.parametrize("sign", [1, -1])
    def test_clip_safe_at_full_scale(self, sign: int) -> None:
        full = 32767 if sign > 0 else -32768
        mixer = voice(translation_gain_db=20.0, original_gain_db=20.0, original_duck_gain_db=20.0)
        mixer.push_original(const(full, 2 * N))
        mixer.push_translation("u1", const(full, 2 * N), last=True)
        for frame in frames(mixer, 2):
            assert frame.pcm.tolist() == [full] * N  # saturated, never wrapped

    def test_mixed_signals_clip_per_sample(self) -> None:
        mixer = voice(original_gain_db=0.0, original_duck_gain_db=0.0)
        orig = np.tile(np.array([30000, -30000, 100, -100], dtype=np.int16), N // 4)
        trans = np.tile(np.array([30000, -30000, -100, 100], dtype=np.int16), N // 4)
        mixer.push_original(orig)
        mixer.push_translation("u1", trans, last=True)
        assert mixer.next_frame().pcm.tolist() == [32767, -32768, 0, 0] * (N // 4)


class TestUtterances:
    def test_back_to_back_in_order_no_gap_no_overlap(self) -> None:
        mixer = translation_only()
        a, b, c = seq(1, 250), seq(1001, 100), seq(2001, 330)
        # Pushed in odd-sized pieces; B and C queue while A plays.
        mixer.push_translation("A", a[:7], last=False)
        mixer.push_translation("A", a[7:200], last=False)
        mixer.push_translation("B", b, last=True)
        mixer.push_translation("A", a[200:], last=True)
        mixer.push_translation("C", c[:1], last=False)
        mixer.push_translation("C", c[1:], last=True)
        out = frames(mixer, 5)
        played = np.concatenate([f.pcm for f in out])
        whole = np.concatenate((a, b, c))
        assert np.array_equal(played[: len(whole)], whole)
        assert not played[len(whole) :].any()
        assert [(f.started, f.finished) for f in out] == [
            (("A",), ()),  # A[0:160]
            (("B",), ("A",)),  # A[160:250] + B[0:70]
            (("C",), ("B",)),  # B[70:100] + C[0:130]
            ((), ()),  # C[130:290]
            ((), ("C",)),  # C[290:330]
        ]

    def test_two_utterances_can_start_and_finish_in_one_frame(self) -> None:
        mixer = translation_only()
        mixer.push_translation("A", seq(1, 40), last=True)
        mixer.push_translation("B", seq(100, 40), last=True)
        frame = mixer.next_frame()
        assert frame.started == ("A", "B")
        assert frame.finished == ("A", "B")
        assert frame.pcm[:80].tolist() == list(range(1, 41)) + list(range(100, 140))

    def test_underrun_waits_inside_an_utterance_and_keeps_order(self) -> None:
        mixer = translation_only()
        mixer.push_translation("A", seq(1, 100), last=False)
        mixer.push_translation("B", seq(500, 50), last=True)  # ready, but A is not finished
        f1 = mixer.next_frame()
        assert f1.pcm[:100].tolist() == list(range(1, 101))
        assert not f1.pcm[100:].any()
        f2 = mixer.next_frame()  # A starved: silence, still ducked, B must not jump in
        assert not f2.pcm.any()
        assert f2.ducked
        assert f2.started == ()
        assert mixer.playing == "A"
        mixer.push_translation("A", seq(101, 60), last=True)
        f3 = mixer.next_frame()
        assert f3.pcm[:60].tolist() == list(range(101, 161))  # continues exactly where it left
        assert f3.pcm[60:110].tolist() == list(range(500, 550))
        assert (f3.started, f3.finished) == (("B",), ("A", "B"))

    def test_empty_last_chunk_finishes_in_next_frame(self) -> None:
        mixer = translation_only()
        mixer.push_translation("A", seq(1, N), last=False)
        assert mixer.next_frame().finished == ()
        mixer.push_translation("A", seq(0, 0), last=True)
        frame = mixer.next_frame()
        assert frame.finished == ("A",)
        assert not frame.pcm.any()
        assert mixer.playing is None

    def test_no_first_audio_yet_means_not_started_and_not_ducked(self) -> None:
        mixer = voice()
        mixer.push_translation("A", seq(0, 0), last=False)
        mixer.push_original(const(1000))
        frame = mixer.next_frame()
        assert frame.started == ()
        assert not frame.ducked
        assert frame.pcm.tolist() == [501] * N

    def test_chunks_after_finish_or_last_are_late(self) -> None:
        mixer = translation_only()
        mixer.push_translation("A", seq(1, 80), last=True)
        mixer.push_translation("A", seq(1, 80), last=False)  # after last: discarded
        assert mixer.late_translation_ms == 10.0
        mixer.next_frame()
        mixer.push_translation("A", seq(1, 160), last=True)  # after finish: discarded
        assert mixer.late_translation_ms == 30.0
        assert mixer.translation_queue_ms == 0.0
        assert not mixer.next_frame().pcm.any()

    def test_push_copies_input(self) -> None:
        mixer = translation_only()
        chunk = seq(1, N)
        mixer.push_translation("A", chunk, last=True)
        chunk[:] = 0
        assert mixer.next_frame().pcm.tolist() == list(range(1, N + 1))

    def test_queue_depth(self) -> None:
        mixer = voice()
        mixer.push_translation("A", const(1, 800), last=False)
        mixer.push_translation("B", const(1, 400), last=True)
        assert mixer.translation_queue_ms == 150.0
        assert mixer.queued_utterances == 2
        mixer.next_frame()
        assert mixer.translation_queue_ms == 130.0

    def test_clear_translation(self) -> None:
        mixer = translation_only()
        mixer.push_translation("A", const(5, 400), last=True)
        mixer.push_translation("B", const(6, 400), last=True)
        mixer.next_frame()
        assert mixer.clear_translation() == ("A", "B")
        assert mixer.dropped_translation_ms == 80.0
        assert mixer.translation_queue_ms == 0.0
        frame = mixer.next_frame()
        assert not frame.pcm.any()
        assert frame.finished == ()


class TestStall:
    """An utterance whose rest never comes (its link reconnected, a chunk was lost) is ended
    after a second without audio: the queue behind it moves on, the original comes back."""

    STALL_FRAMES = 50  # 1000 ms of 20 ms frames

    def test_a_stalled_utterance_ends_and_the_next_plays(self) -> None:
        mixer = translation_only()
        mixer.push_translation("A", seq(1, 3 * N), last=False)  # 3 of its 6 frames, then nothing
        mixer.push_translation("B", seq(1000, 2 * N), last=True)
        played = frames(mixer, 3)
        assert [f.started for f in played] == [("A",), (), ()]
        waiting = frames(mixer, self.STALL_FRAMES)  # a second of silence, still ducked
        assert all(f.ducked and not f.pcm.any() and not f.finished for f in waiting)
        ended = mixer.next_frame()
        assert (ended.finished, ended.started) == (("A",), ("B",))
        assert ended.pcm.tolist() == list(range(1000, 1000 + N))  # B at once, whole
        assert mixer.next_frame().finished == ("B",)
        assert mixer.stalled_utterances == 1
        mixer.push_translation("A", seq(1, N), last=True)  # its rest, too late
        assert mixer.late_translation_ms == 20.0
        assert not mixer.next_frame().pcm.any()
        assert mixer.stats()["stalled_utterances"] == 1

    def test_the_original_returns_to_its_level(self) -> None:
        mixer = voice()
        mixer.push_translation("A", const(2000, N), last=False)
        out = []
        for _ in range(self.STALL_FRAMES + 3):
            mixer.push_original(const(1000))
            out.append(mixer.next_frame())
        assert all(f.ducked for f in out[: self.STALL_FRAMES + 1])
        assert out[self.STALL_FRAMES].pcm.tolist() == [126] * N  # -18 dB: still waiting
        back, after = out[self.STALL_FRAMES + 1 :]
        assert back.finished == ("A",) and not back.ducked
        assert np.array_equal(back.pcm, expected(const(1000), ramp(-18, -6)))
        assert after.pcm.tolist() == [501] * N  # -6 dB, as before the translation

    def test_audio_that_comes_in_time_restarts_the_wait(self) -> None:
        mixer = translation_only()
        mixer.push_translation("A", seq(1, N), last=False)
        frames(mixer, self.STALL_FRAMES)  # 980 ms of waiting
        mixer.push_translation("A", seq(200, N), last=False)
        assert mixer.next_frame().pcm.tolist() == list(range(200, 200 + N))
        assert not any(f.finished for f in frames(mixer, self.STALL_FRAMES))
        assert mixer.next_frame().finished == ("A",)
        assert mixer.stalled_utterances == 1

    def test_the_limit_is_configurable(self) -> None:
        mixer = translation_only(stall_ms=200)
        mixer.push_translation("A", seq(1, N), last=False)
        assert [f.finished for f in frames(mixer, 12)][-1] == ("A",)


class TestOverflow:
    """queue_limit_s = 0.1 s = 800 samples at 8 kHz."""

    def test_drops_oldest_unstarted_utterances_first_never_the_playing_one(self) -> None:
        mixer = translation_only(queue_limit_s=0.1)
        mixer.push_translation("A", seq(1, 300), last=True)
        mixer.next_frame()  # A playing, 140 left
        mixer.push_translation("B", seq(1000, 200), last=True)
        mixer.push_translation("C", seq(2000, 200), last=True)
        assert mixer.overflow_events == 0
        dropped = mixer.push_translation("D", seq(3000, 300), last=True)  # 840 + 300 > 800
        assert dropped == ("B",)  # 140 + 200 + 300 = 640 fits after dropping only B
        assert mixer.overflow_events == 1
        assert mixer.dropped_translation_ms == 25.0
        assert mixer.dropped_utterances == 1
        played = np.concatenate([f.pcm for f in frames(mixer, 4)])
        expected_stream = np.concatenate((seq(161, 140), seq(2000, 200), seq(3000, 300)))
        assert np.array_equal(played[:640], expected_stream)
        # A late chunk for the dropped utterance is discarded.
        mixer.push_translation("B", seq(0, 10), last=True)
        assert mixer.late_translation_ms == 1.25

    def test_single_utterance_over_the_limit_loses_its_tail(self) -> None:
        mixer = translation_only(queue_limit_s=0.1)
        assert mixer.push_translation("A", seq(1, 700), last=False) == ()
        assert mixer.push_translation("A", seq(701, 300), last=False) == ()
        assert mixer.overflow_events == 1
        assert mixer.dropped_translation_ms == 25.0  # 200 of the 300 did not fit
        mixer.push_translation("A", seq(1001, 100), last=False)  # truncated: discarded
        assert mixer.dropped_translation_ms == 37.5
        mixer.push_translation("A", seq(0, 0), last=True)  # last is still honoured
        out = frames(mixer, 6)
        played = np.concatenate([f.pcm for f in out])
        assert np.array_equal(played[:800], seq(1, 800))
        assert not played[800:].any()
        assert [f.finished for f in out].count(("A",)) == 1
        assert out[4].finished == ("A",)  # last sample (index 799) goes out in frame 5

    def test_playing_utterance_is_never_dropped(self) -> None:
        mixer = translation_only(queue_limit_s=0.1)
        mixer.push_translation("A", seq(1, 600), last=False)
        mixer.next_frame()  # A started, 440 queued
        dropped = mixer.push_translation("B", seq(2000, 500), last=True)
        assert dropped == ()  # nothing unstarted to drop: B (receiving) is cut to fit
        assert mixer.translation_queue_ms == 100.0
        assert mixer.playing == "A"

    def test_latency_stays_bounded_under_a_flood(self) -> None:
        mixer = voice(queue_limit_s=1.0)
        for i in range(200):
            mixer.push_translation(f"u{i}", const(100, 800), last=True)  # 100 ms each
            mixer.next_frame()
            assert mixer.translation_queue_ms <= 1000.0
        assert mixer.overflow_events > 0
        assert mixer.dropped_utterances > 0


class TestOriginalFifo:
    def test_overflow_drops_oldest_and_counts(self) -> None:
        mixer = voice(original_gain_db=0.0)  # gain exactly 1.0
        mixer.push_original(seq(0, 2400))  # 300 ms into a 200 ms buffer
        assert mixer.dropped_original_ms == 100.0
        assert mixer.original_queue_ms == 200.0
        assert mixer.next_frame().pcm.tolist() == list(range(800, 960))  # the newest 200 ms

    def test_underrun_plays_silence_and_counts(self) -> None:
        mixer = voice(original_gain_db=0.0)
        mixer.push_original(seq(1, 100))
        frame = mixer.next_frame()
        assert frame.pcm[:100].tolist() == list(range(1, 101))
        assert not frame.pcm[100:].any()
        assert mixer.original_underrun_ms == 7.5

    def test_any_push_length(self) -> None:
        mixer = voice(original_gain_db=0.0)
        for size in (1, 33, 160, 7, 119):
            mixer.push_original(const(7, size))
        assert mixer.next_frame().pcm.tolist() == [7] * N
        assert mixer.next_frame().pcm[:160].tolist() == [7] * 160
        assert mixer.original_queue_ms == 0.0


class TestModes:
    @pytest.mark.parametrize("mode", ["captions", "passthrough"])
    def test_translation_is_never_mixed(self, mode: str) -> None:
        mixer = voice(mode=mode)
        assert mixer.push_translation("A", const(9000, 2 * N), last=True) == ()
        assert mixer.ignored_translation_ms == 40.0
        mixer.push_original(const(1000, 2 * N))
        for frame in frames(mixer, 2):
            assert frame.pcm.tolist() == [501] * N  # original at original_gain, not ducked
            assert not frame.ducked
            assert frame.started == frame.finished == ()
        assert mixer.translation_queue_ms == 0.0

    def test_invalid_arguments(self) -> None:
        with pytest.raises(ValueError, match="mix mode"):
            voice(mode="karaoke")
        with pytest.raises(ValueError, match="queue_limit_s"):
            voice(queue_limit_s=0.0)

    def test_from_config_uses_the_direction_mode(self) -> None:
        media = MediaConfig(caller_to_operator="captions", operator_to_caller="voice")
        to_operator = ListenerMixer.from_config(media, media.mode(Direction.CALLER_TO_OPERATOR))
        to_caller = ListenerMixer.from_config(media, media.mode(Direction.OPERATOR_TO_CALLER))
        assert (to_operator.mode, to_caller.mode) == ("captions", "voice")
        assert to_caller.original_duck_gain_db == media.original_duck_gain_db
        assert to_caller.queue_limit_s == media.translation_queue_s


class TestIndependence:
    def test_two_listeners_share_no_state(self) -> None:
        """Each direction's listener mixer is independent of the other speaker's traffic."""
        to_operator, to_caller = translation_only(), translation_only()
        to_operator.push_translation("same-id", seq(1, N), last=True)
        to_caller.push_translation("same-id", seq(500, 80), last=False)
        f_op, f_ca = to_operator.next_frame(), to_caller.next_frame()
        assert f_op.pcm.tolist() == list(range(1, N + 1))
        assert f_ca.pcm[:80].tolist() == list(range(500, 580))
        assert f_op.finished == ("same-id",)
        assert f_ca.finished == ()
        assert to_caller.playing == "same-id"
        assert to_operator.playing is None

    def test_frames_are_not_aliased(self) -> None:
        mixer = voice(original_gain_db=0.0)
        mixer.push_original(const(5, 2 * N))
        first = mixer.next_frame().pcm
        second = mixer.next_frame().pcm
        first[:] = 0
        assert second.tolist() == [5] * N

    def test_stats(self) -> None:
        stats = voice().stats()
        assert set(stats) >= {
            "translation_queue_ms",
            "dropped_original_ms",
            "dropped_translation_ms",
            "overflow_events",
        }
