"""The load-test meters of the fake Twilio: outbound lateness, tone onsets, tone frames."""

from __future__ import annotations

import math

import numpy as np
import pytest

from callbridge.sim.twilio.audio import FRAME_BYTES, ulaw_decode
from callbridge.sim.twilio.meters import JitterMeter, LatenessMeter, MsHistogram, ToneOnsets
from callbridge.sim.twilio.tone_voice import ToneVoice, tone_frame


def feed(meter: JitterMeter, arrivals_ms: list[float], frame_bytes: int = 160) -> list[float]:
    return [meter.media(at / 1000, frame_bytes) for at in arrivals_ms]


class TestLateness:
    def test_a_message_is_late_by_the_time_since_the_tick_that_found_the_buffer_dry(self) -> None:
        meter = LatenessMeter()
        assert meter.media(0.000) == 0.0  # nothing ran dry: on time
        meter.ran_dry(0.020)
        meter.ran_dry(0.040)  # the same gap goes on
        assert meter.media(0.047) == pytest.approx(27.0)
        assert meter.media(0.049) == 0.0  # plays on the shifted schedule: not late again
        assert meter.reset_window().summary()["max_ms"] == pytest.approx(27.0)
        assert meter.window.count == 0


class TestJitter:
    def test_a_steady_20ms_stream_is_never_late_whatever_its_phase(self) -> None:
        assert feed(JitterMeter(), [7.3 + 20 * i for i in range(100)]) == pytest.approx(
            [0.0] * 100, abs=1e-6
        )

    def test_a_late_message_is_late_by_its_delay_and_the_bunched_next_ones_are_not(self) -> None:
        arrivals = [20.0 * i for i in range(10)]
        arrivals[5] += 15  # late; message 6 comes on time, right behind it
        lateness = feed(JitterMeter(), arrivals)
        assert lateness[5] == pytest.approx(15)
        assert lateness[:5] + lateness[6:] == pytest.approx([0.0] * 9, abs=1e-6)

    def test_a_frame_left_out_shows_as_20ms_of_jitter_arrivals_alone_cannot_tell(self) -> None:
        # A playout trim: frame 5 is never sent, later frames keep their 20 ms slots.
        arrivals = [20.0 * i for i in range(10) if i != 5]
        assert feed(JitterMeter(), arrivals)[5:] == pytest.approx([20.0] * 4)

    def test_a_stall_that_shifts_the_schedule_later_counts_until_the_window_forgets(self) -> None:
        meter = JitterMeter(window_s=1.0)
        arrivals = [20.0 * i for i in range(50)] + [1000 + 30 + 20.0 * i for i in range(100)]
        lateness = feed(meter, arrivals)
        assert lateness[50] == pytest.approx(30)  # 30 ms later than the old schedule
        assert lateness[-1] == pytest.approx(0.0, abs=1e-6)  # 1 s on, the new schedule is it

    def test_40ms_payloads_advance_the_schedule_by_40ms(self) -> None:
        lateness = feed(JitterMeter(), [40.0 * i for i in range(20)], frame_bytes=320)
        assert max(lateness) == pytest.approx(0.0, abs=1e-6)

    def test_the_window_histogram_gives_percentiles_and_resets(self) -> None:
        meter = JitterMeter()
        arrivals = [20.0 * i for i in range(100)]
        arrivals[50] += 25
        feed(meter, arrivals)
        window = meter.reset_window()
        summary = window.summary()
        assert summary["messages"] == 100 and summary["over_20ms"] == 1
        assert summary["p50_ms"] == 0.0  # on time is exactly 0
        assert summary["max_ms"] == pytest.approx(25)
        assert meter.window.count == 0

    def test_histograms_merge_across_streams(self) -> None:
        a, b = MsHistogram(), MsHistogram()
        for _ in range(98):
            a.add(1.0)
        b.add(30.0)
        b.add(40.0)
        a.merge(b)
        assert a.count == 100 and a.percentile_ms(0.99) == pytest.approx(30.5)
        assert a.max_ms == 40.0 and MsHistogram().percentile_ms(0.5) is None


def tone(freq_hz: float, level_dbfs: float = -20.0, n: int = 160) -> np.ndarray:
    amp = 32767 * 10 ** (level_dbfs / 20)
    return (amp * np.sin(2 * math.pi * freq_hz * np.arange(n) / 8000)).astype(np.int16)


class TestToneOnsets:
    def test_an_onset_is_the_first_loud_frame_after_a_quiet_gap(self) -> None:
        onsets = ToneOnsets((500.0, 1300.0), gap_frames=3)
        frames = [None, None, tone(500), tone(500), None, tone(500), None, None, None, tone(500)]
        for i, pcm in enumerate(frames):
            onsets.frame(pcm, at=float(i))
        taken = onsets.take()
        # Frame 5 follows a one-frame gap (the same burst); frame 9 follows three quiet frames.
        assert taken == {"500": [2.0, 9.0], "1300": []}
        assert onsets.take() == {"500": [], "1300": []}

    def test_each_frequency_is_told_apart_and_quiet_tones_do_not_count(self) -> None:
        onsets = ToneOnsets((500.0, 800.0, 2000.0), threshold_dbfs=-45.0)
        onsets.frame(tone(800) + tone(2000, -30), at=1.0)
        onsets.frame(tone(500, -60), at=2.0)
        assert onsets.take() == {"500": [], "800": [1.0], "2000": [1.0]}


class TestToneVoice:
    def test_frames_from_the_shared_period_match_frames_computed_from_scratch(self) -> None:
        voice = ToneVoice(800.0, on_s=1.5, off_s=4.5, start_delay_s=0.3)
        for index in range(700):  # more than two periods of 300 frames
            expected = tone_frame(800.0, 1.5, 4.5, 0.3, -12.0, index)
            got = voice.next_frame()
            # Float rounding may move a burst's edge by one sample between periods.
            assert sum(a != b for a, b in zip(got, expected, strict=True)) <= 1, index

    @pytest.mark.parametrize("freq_hz", [500.0, 650.0])  # 650 Hz does not repeat: computed
    def test_burst_started_marks_the_first_frame_of_each_burst(self, freq_hz: float) -> None:
        voice = ToneVoice(freq_hz, on_s=0.2, off_s=0.3, start_delay_s=0.1)
        starts = []
        for index in range(100):
            frame = voice.next_frame()
            if voice.burst_started:
                starts.append(index)
                assert np.abs(ulaw_decode(frame).astype(int)).max() > 1000
        assert starts == [5, 30, 55, 80]  # 0.1 s, then every 0.5 s
        assert len(frame) == FRAME_BYTES
