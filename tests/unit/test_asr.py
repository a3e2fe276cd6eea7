"""Recognition over speech regions: windows, reading region by region, times mapped back to the reel, the
language, the choice between inputs, and a real recorded sentence recognised by the bundled model."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import soxr

from asr_reference import PROMPTS, TEXTS, prompt_texts, word_error_rate
from pipeline import asr, vad
from pipeline.asr import JOIN_S, AsrOptions, Piece
from pipeline.readers import ArrayReader



def test_windows_pad_merge_and_gather_regions():
    regions = [(1.0, 2.0), (2.3, 3.0), (10.0, 11.0), (40.0, 75.0), (79.9, 80.0)]
    windows = asr.plan_windows(regions, 80.0, pad_s=0.2, window_s=28.0)
    # 1-2 and 2.3-3 touch once padded: one piece; the 35 s region is a window of its own; clipped at the end
    as_tuples = [[(p.at, p.start, p.end) for p in w] for w in windows]
    assert as_tuples[0] == [pytest.approx((0.0, 0.8, 3.2)), pytest.approx((2.4 + JOIN_S, 9.8, 11.2))]
    assert as_tuples[1:] == [[pytest.approx((0.0, 39.8, 75.2))], [pytest.approx((0.0, 79.7, 80.0))]]
    assert asr.plan_windows([], 10.0) == []
    for window in asr.plan_windows([(i * 3.0, i * 3.0 + 1.0) for i in range(100)], 400.0, window_s=10.0):
        assert sum(p.end - p.start for p in window) <= 10.0 + 1e-9


def test_window_times_map_back_to_the_reel():
    pieces = (Piece(0.0, 5.0, 7.0), Piece(2.3, 20.0, 21.0))
    assert asr.to_media(0.5, pieces) == 5.5
    assert asr.to_media(2.0, pieces) == 7.0
    assert asr.to_media(2.1, pieces) == 7.0                     # in the silence: the end of the piece before
    assert asr.to_media(2.1, pieces, start=True) == 20.0        # a word starting there starts in the next piece
    assert asr.to_media(2.8, pieces) == pytest.approx(20.5)
    assert asr.to_media(9.0, pieces) == 21.0 == asr.to_media(9.0, pieces, start=True)


class CountingReader(ArrayReader):
    def __init__(self, audio):
        super().__init__(audio)
        self.reads = []

    def read(self, start, count):
        self.reads.append((start, count))
        return super().read(start, count)


def test_a_window_is_read_region_by_region_block_by_block_and_resampled():
    rate = 48_000
    t = np.arange(60 * rate) / rate
    x = np.stack([np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], 1).astype(np.float32)
    reader = CountingReader(x)
    pieces = (Piece(0.0, 3.0, 26.0), Piece(23.0 + JOIN_S, 40.0, 41.0))
    out = asr.read_window(reader, rate, pieces, asr.dialogue_weights(2, "stereo"))
    assert out.dtype == np.float32 and out.size == round((23.0 + JOIN_S + 1.0) * asr.SR)
    for start, count in reader.reads:      # only the pieces are read, at most READ_S at a time
        assert count <= asr.READ_S * rate
        assert 3 * rate <= start and start + count <= 26 * rate or 40 * rate <= start and start + count <= 41 * rate
    expected = soxr.resample(x[3 * rate:26 * rate, 0] / 2, rate, asr.SR)   # stereo L R: the mean of the pair
    middle = slice(asr.SR, 22 * asr.SR)
    assert np.max(np.abs(out[middle] - expected[middle])) < 1e-3
    gap = out[round(23.0 * asr.SR) + 10:round((23.0 + JOIN_S) * asr.SR) - 10]
    assert np.all(gap == 0)


def test_dialogue_weights_follow_the_layout():
    assert asr.dialogue_weights(1).tolist() == [1.0]
    five_one = asr.dialogue_weights(6, "5.1")
    assert five_one[2] > 0 and five_one[3] == 0          # the centre carries dialogue; never the LFE


def _word(start, end, text, p):
    return SimpleNamespace(start=start, end=end, word=text, probability=p)


class FakeRecogniser:
    """Answers each window with one segment per call whose words are given by `answer(audio)`."""

    def __init__(self, answer):
        import threading
        self.lock, self.label, self.calls, self.detections = threading.Lock(), "fake", [], []
        self.answer = answer
        self.model = self

    def detect_language(self, audio):
        self.detections.append(audio.size)
        return "fr", 0.8, [("fr", 0.8)]

    def transcribe(self, audio, language=None, **kw):
        self.calls.append((audio.size, language, kw))
        words = self.answer(audio)
        return iter([SimpleNamespace(words=words)]), SimpleNamespace(language="fr", language_probability=0.8)


def test_language_detected_once_on_the_first_speech_then_kept():
    rec = FakeRecogniser(lambda audio: [_word(0.0, 0.4, " Bonjour", 0.9)])
    regions = [(1.0, 2.0), (40.0, 41.0), (80.0, 81.0)]
    detecting = CountingReader(np.zeros((100 * 16_000, 1), np.float32))
    got = asr.transcribe(detecting, 16_000, regions, rec, options=AsrOptions(window_s=2.0))
    # detected once, on the first window alone (faster-whisper's detection), then every window recognised in it
    assert rec.detections == [rec.calls[0][0]] and [c[1] for c in rec.calls] == ["fr", "fr", "fr"]
    assert got.language == "fr" and got.language_probability == 0.8 and len(got.lines) == 3
    assert [line.start for line in got.lines] == pytest.approx([0.8, 39.8, 79.8])   # window start = region - pad
    assert all(c[2]["word_timestamps"] and not c[2]["vad_filter"] for c in rec.calls)
    told = CountingReader(np.zeros((100 * 16_000, 1), np.float32))
    forced = asr.transcribe(told, 16_000, regions, rec, options=AsrOptions(language="de"))
    assert forced.language == "de" and forced.language_probability == 1.0 and len(rec.detections) == 1
    assert detecting.reads == told.reads      # the window the language is detected on is read once, not twice


def test_no_speech_means_no_recognition():
    rec = FakeRecogniser(lambda audio: [])
    got = asr.transcribe(ArrayReader(np.zeros((16_000, 1), np.float32)), 16_000, [], rec)
    assert rec.calls == [] and got.lines == () and got.language == ""


def test_a_segment_is_split_into_lines_where_its_words_are_apart_in_the_reel_and_unlikely_words_dropped():
    rec = FakeRecogniser(lambda audio: [_word(0.0, 0.3, " Come", 0.9), _word(0.3, 0.6, " here.", 0.7),
                                        _word(0.6, 0.6, " Hmm.", 0.0), _word(1.5, 1.8, " Now!", 0.5)])
    got = asr.transcribe(ArrayReader(np.zeros((20 * 16_000, 1), np.float32)), 16_000, [(1.0, 2.0), (8.0, 9.0)],
                         rec, options=AsrOptions(pad_s=0.0))
    assert [line.text for line in got.lines] == ["Come here.", "Now!"]
    assert got.lines[0].confidence == pytest.approx(0.8)
    assert got.lines[1].start == pytest.approx(8.0 + 1.5 - 1.0 - JOIN_S)   # 8.2 s in the reel


def test_with_two_inputs_the_more_confident_window_is_kept():
    def answer(audio):   # the "mix" reader is loud: the recogniser is surer of it
        sure = float(np.abs(audio).max()) > 0.5
        return [_word(0.1, 0.5, " loud" if sure else " quiet", 0.9 if sure else 0.4)]
    n = 10 * 16_000
    readers = {"dx": ArrayReader(np.full((n, 1), 0.1, np.float32)), "mix": ArrayReader(np.ones((n, 1), np.float32))}
    got = asr.transcribe(readers, 16_000, [(1.0, 3.0)], FakeRecogniser(answer))
    assert got.source == "dx+mix" and [line.text for line in got.lines] == ["loud"]


def test_line_levels_are_the_k_weighted_level_of_the_stem_over_the_line():
    from pipeline.words import Line, Transcript
    rate = 48_000
    t = np.arange(4 * rate) / rate
    x = np.zeros((4 * rate, 2), np.float32)
    x[rate:3 * rate] = (0.1 * np.sin(2 * np.pi * 1000 * t[:2 * rate]))[:, None]
    lines = (Line(1.0, 3.0, "a", (), 1.0), Line(3.5, 3.9, "b", (), 1.0))
    got = asr.with_levels(Transcript("en", 1.0, lines, "m", "dx"), ArrayReader(x), rate, "stereo")
    # a 1 kHz sine at -20 dBFS in both channels of a pair: -20 - 3.01 + 0.69 (K-weighting at 1 kHz) + 3.01 - 0.691
    assert got.lines[0].level_db == pytest.approx(-20.0, abs=0.2)
    assert got.lines[1].level_db is None                       # silence: unmeasured


def test_word_error_rate():
    assert word_error_rate("Please enter your number.", "please enter the number") == 0.25
    assert word_error_rate("a b c", "") == 1.0 and word_error_rate("a b", "a b") == 0.0


@pytest.mark.skipif(not TEXTS.is_file(), reason="apt-get install -y asterisk-core-sounds-en-wav")
def test_recorded_sentences_are_recognised_word_for_word():
    """Three of Asterisk's recorded prompts (a voice talent, 8 kHz) at 48 kHz stereo with silences between,
    through VAD and the bundled model: measured WER 0 %, bar 10 %; every word inside its speech region."""
    from pipeline.asr_model import load_recogniser, resolve_asr_model

    names = ["agent-alreadyon", "auth-incorrect", "conf-getpin"]
    texts, parts = prompt_texts(), []
    for name in names:
        x, r = sf.read(PROMPTS / f"{name}.wav", dtype="float32")
        parts += [np.zeros(int(1.5 * 48_000), np.float32), soxr.resample(x, r, 48_000)]
    x = np.concatenate(parts + [np.zeros(48_000, np.float32)])
    stereo = np.stack([x, x], 1)
    regions = vad.speech_regions(stereo, 48_000)
    got = asr.transcribe(ArrayReader(stereo), 48_000, regions, load_recogniser(resolve_asr_model(None)),
                         layout="stereo")
    said = " ".join(line.text for line in got.lines)
    assert word_error_rate(" ".join(texts[n] for n in names), said) <= 0.10, said
    assert got.language == "en" and got.language_probability > 0.8
    assert got.model.startswith("whisper-base") and got.source == "dx"
    for word in (w for line in got.lines for w in line.words):
        assert any(s - 0.25 <= word.start <= word.end <= e + 0.25 for s, e in regions), word
        assert 0.0 <= word.probability <= 1.0


@pytest.mark.skipif(not TEXTS.is_file(), reason="apt-get install -y asterisk-core-sounds-en-wav")
def test_windows_recognised_two_at_a_time_give_the_same_transcript_as_one_at_a_time():
    """Two recogniser calls at once (asr_model.MAX_WORKERS, one thread each: nearly twice the words per second
    on 2 cores) change nothing in what is recognised: the same lines, words and times as one call at a time."""
    from pipeline.asr_model import load_recogniser, resolve_asr_model

    names = ["agent-alreadyon", "auth-incorrect", "conf-getpin", "cannot-complete-as-dialed"]
    parts = []
    for name in names:
        x, r = sf.read(PROMPTS / f"{name}.wav", dtype="float32")
        parts += [np.zeros(48_000, np.float32), soxr.resample(x, r, 48_000)]
    x = np.concatenate(parts + [np.zeros(48_000, np.float32)])
    regions = vad.speech_regions(x[:, None], 48_000)
    options = AsrOptions(window_s=1.5)            # a window per prompt; the language detected on the first
    one, two = load_recogniser(resolve_asr_model(None), threads=1), load_recogniser(resolve_asr_model(None), threads=2)
    assert (one.workers, two.workers) == (1, 2)
    a = asr.transcribe(ArrayReader(x[:, None]), 48_000, regions, one, options=options)
    b = asr.transcribe(ArrayReader(x[:, None]), 48_000, regions, two, options=options)
    assert len(asr.plan_windows(regions, x.size / 48_000, window_s=1.5)) >= 4
    assert [(w.start, w.end, w.text) for line in a.lines for w in line.words] == \
        [(w.start, w.end, w.text) for line in b.lines for w in line.words]
    assert asr.word_count(a) >= 15 and a.language == b.language == "en"


def test_windows_run_at_most_workers_at_once_and_keep_reel_order():
    import threading
    import time

    running, most, lock = [0], [0], threading.Lock()

    def answer(audio):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05 if len(rec.calls) % 2 else 0.15)    # later windows can finish first
        with lock:
            running[0] -= 1
        return [_word(0.0, 0.2, f" w{audio.size}", 0.9)]

    rec = FakeRecogniser(answer)
    rec.workers, rec.lock = 3, threading.BoundedSemaphore(3)
    regions = [(1.0 + 3 * k, 1.5 + 3 * k + 0.1 * k) for k in range(8)]     # windows of different lengths
    got = asr.transcribe(ArrayReader(np.zeros((30 * 16_000, 1), np.float32)), 16_000, regions, rec,
                         options=AsrOptions(window_s=0.5))
    assert len(rec.calls) == 8 and len(rec.detections) == 1 and all(c[1] == "fr" for c in rec.calls)
    assert most[0] == 3
    assert [line.start for line in got.lines] == sorted(line.start for line in got.lines)
    assert len(got.lines) == 8


class SegmentRecogniser(FakeRecogniser):
    """Answers each window with the given segments (words, compression ratio, mean log-probability)."""

    def __init__(self, segments):
        super().__init__(lambda audio: [])
        self.segments = segments

    def transcribe(self, audio, language=None, **kw):
        self.calls.append((audio.size, language, kw))
        return iter(self.segments), SimpleNamespace(language="en", language_probability=1.0)


def test_without_the_fallback_one_greedy_decoding_and_what_it_would_have_retried_is_dropped():
    """The QC's M&E check (fallback False): temperature 0 only, and a segment that repeats itself (the
    hallucination measured on a DFN3 M&E: "I'm sorry." 40 times, compression ratio 13.25) or that the recogniser
    doubts (mean log-probability under -1) gives no words; a plain segment stands. With the fallback (the
    words stage) the recogniser's own retries decide and nothing is filtered here."""
    sorry = SimpleNamespace(words=[_word(0.2 + i, 0.8 + i, " sorry.", 0.9) for i in range(20)],
                            compression_ratio=13.25, avg_logprob=-0.17)
    doubtful = SimpleNamespace(words=[_word(21.0, 21.5, " what", 0.6)], compression_ratio=1.1, avg_logprob=-1.4)
    plain = SimpleNamespace(words=[_word(23.0, 23.4, " Hello", 0.9), _word(23.5, 23.9, " there.", 0.9)],
                            compression_ratio=1.0, avg_logprob=-0.3)
    reader = ArrayReader(np.zeros((30 * 16_000, 1), np.float32))
    rec = SegmentRecogniser([sorry, doubtful, plain])
    got = asr.transcribe(reader, 16_000, [(0.0, 28.0)], rec, options=AsrOptions(language="en", fallback=False))
    assert rec.calls[-1][2]["temperature"] == 0.0
    assert [line.text for line in got.lines] == ["Hello there."]
    rec = SegmentRecogniser([sorry, doubtful, plain])
    got = asr.transcribe(reader, 16_000, [(0.0, 28.0)], rec, options=AsrOptions(language="en"))
    assert "temperature" not in rec.calls[-1][2]
    assert asr.word_count(got) == 23
