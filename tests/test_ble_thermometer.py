"""BLE Health Thermometer (0x1809 / 0x2A1C) parsing, encoding, simulator and de-duplication.

Byte vectors are written out by hand from the specification: flags byte, IEEE-11073 FLOAT as
little-endian uint32 (mantissa in the low 3 bytes, signed exponent in the high byte), optional
7-byte date-time (year uint16 LE, month, day, h, m, s), optional type byte.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tools.ble_thermometer import (
    BleParseError,
    BleReadingError,
    ReadingDeduplicator,
    TemperatureMeasurement,
    TemperatureType,
    ThermometerSimulator,
    encode_temperature_measurement,
    parse_temperature_measurement,
)

# 2026-11-23 02:15:30 → year 2026 = 0x07EA
TS_BYTES = b"\xea\x07\x0b\x17\x02\x0f\x1e"
TS = datetime(2026, 11, 23, 2, 15, 30)


def _has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


# ---------------------------------------------------------------- value and unit


@pytest.mark.parametrize(
    ("payload", "expected_raw", "expected_c", "mantissa", "exponent"),
    [
        (b"\x00\x72\x01\x00\xff", 37.0, 37.0, 370, -1),  # 370 x 10^-1 °C
        (b"\x00\x7f\x01\x00\xff", 38.3, 38.3, 383, -1),  # 0x017F = 383
        (b"\x00\x5b\x0e\x00\xfe", 36.75, 36.75, 3675, -2),  # 0x0E5B = 3675, exponent 0xFE = -2
        (b"\x00\x04\x00\x00\x01", 40.0, 40.0, 4, 1),  # positive exponent: 4 x 10^1
        (b"\x00\x27\x00\x00\x00", 39.0, 39.0, 39, 0),  # exponent 0, not a special value
        (b"\x00\xce\xff\xff\xff", -5.0, -5.0, -50, -1),  # 0xFFFFCE = -50 (24-bit two's complement)
    ],
)
def test_celsius_values_decode(
    payload: bytes, expected_raw: float, expected_c: float, mantissa: int, exponent: int
) -> None:
    m = parse_temperature_measurement(payload)
    assert m.unit == "C"
    assert m.value_raw == expected_raw
    assert m.value_c == expected_c
    assert (m.mantissa, m.exponent) == (mantissa, exponent)
    assert m.special is None
    assert m.timestamp is None and m.temperature_type is None
    assert m.flags == 0


def test_fahrenheit_flag_converts_to_celsius() -> None:
    # flags bit0 = °F; 986 = 0x03DA, exponent -1 → 98.6 °F = 37.0 °C
    m = parse_temperature_measurement(b"\x01\xda\x03\x00\xff")
    assert m.unit == "F"
    assert m.value_raw == 98.6
    assert m.value_c == 37.0
    # 1022 = 0x03FE → 102.2 °F = 39.0 °C
    assert parse_temperature_measurement(b"\x01\xfe\x03\x00\xff").value_c == 39.0


def test_reserved_flag_bits_are_ignored() -> None:
    m = parse_temperature_measurement(b"\xf8\x72\x01\x00\xff")
    assert m.value_c == 37.0 and m.unit == "C"
    assert m.timestamp is None and m.temperature_type is None
    assert m.flags == 0xF8


# ---------------------------------------------------------------- special values


@pytest.mark.parametrize(
    ("payload", "special"),
    [
        (b"\x00\xff\xff\x7f\x00", "nan"),  # 0x007FFFFF
        (b"\x00\x00\x00\x80\x00", "nres"),  # 0x00800000
        (b"\x00\xfe\xff\x7f\x00", "+inf"),  # 0x007FFFFE
        (b"\x00\x02\x00\x80\x00", "-inf"),  # 0x00800002
        (b"\x01\xff\xff\x7f\x00", "nan"),  # special values also in °F mode
    ],
)
def test_special_values(payload: bytes, special: str) -> None:
    m = parse_temperature_measurement(payload)
    assert m.special == special
    assert m.value_c is None and m.value_raw is None


def test_reserved_special_value_is_rejected() -> None:
    with pytest.raises(BleParseError) as err:
        parse_temperature_measurement(b"\x00\x01\x00\x80\x00")  # 0x00800001
    assert err.value.code == "reserved_float_value"


def test_special_mantissa_with_nonzero_exponent_is_a_number() -> None:
    # The special values are defined with exponent 0; 0xFF7FFFFF is 8388607 x 10^-1.
    m = parse_temperature_measurement(b"\x00\xff\xff\x7f\xff")
    assert m.special is None
    assert m.value_raw == 838860.7


# ---------------------------------------------------------------- timestamp and type


def test_timestamp_present() -> None:
    m = parse_temperature_measurement(b"\x02\x7f\x01\x00\xff" + TS_BYTES)
    assert m.timestamp == TS
    assert m.value_c == 38.3
    assert m.temperature_type is None
    assert not m.timestamp_incomplete


def test_timestamp_takes_receiver_zone_when_received_at_is_aware() -> None:
    zone = timezone(timedelta(hours=8))
    received = datetime(2026, 11, 23, 2, 16, tzinfo=zone)
    m = parse_temperature_measurement(b"\x02\x7f\x01\x00\xff" + TS_BYTES, received_at=received)
    assert m.timestamp == TS.replace(tzinfo=zone)
    assert m.received_at == received
    assert m.measured_at == m.timestamp


@pytest.mark.parametrize(
    "ts_bytes",
    [
        b"\x00\x00\x0b\x17\x02\x0f\x1e",  # year 0 = unknown
        b"\xea\x07\x00\x17\x02\x0f\x1e",  # month 0 = unknown
        b"\xea\x07\x0b\x00\x02\x0f\x1e",  # day 0 = unknown
    ],
)
def test_unknown_date_parts_fall_back_to_received_at(ts_bytes: bytes) -> None:
    received = datetime(2026, 11, 23, 3, 0)
    m = parse_temperature_measurement(b"\x02\x72\x01\x00\xff" + ts_bytes, received_at=received)
    assert m.timestamp is None
    assert m.timestamp_incomplete
    assert m.measured_at == received


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (1, TemperatureType.armpit),
        (2, TemperatureType.body),
        (3, TemperatureType.ear),
        (4, TemperatureType.finger),
        (5, TemperatureType.gastro),
        (6, TemperatureType.mouth),
        (7, TemperatureType.rectum),
        (8, TemperatureType.toe),
        (9, TemperatureType.tympanum),
    ],
)
def test_temperature_type_codes(code: int, expected: TemperatureType) -> None:
    m = parse_temperature_measurement(b"\x04\x72\x01\x00\xff" + bytes([code]))
    assert m.temperature_type is expected
    assert m.timestamp is None


def test_all_fields_present_in_fahrenheit() -> None:
    # flags 0x07: °F + timestamp + type; 1013 = 0x03F5 → 101.3 °F; type 3 = ear
    m = parse_temperature_measurement(b"\x07\xf5\x03\x00\xff" + TS_BYTES + b"\x03")
    assert m.unit == "F"
    assert m.value_raw == 101.3
    assert m.value_c == 38.5
    assert m.timestamp == TS
    assert m.temperature_type is TemperatureType.ear


def test_bytearray_and_memoryview_are_accepted() -> None:
    assert parse_temperature_measurement(bytearray(b"\x00\x72\x01\x00\xff")).value_c == 37.0
    assert parse_temperature_measurement(memoryview(b"\x00\x72\x01\x00\xff")).value_c == 37.0


# ---------------------------------------------------------------- malformed payloads


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"", "too_short"),
        (b"\x00", "too_short"),
        (b"\x00\x72\x01\x00", "too_short"),
        (b"\x02\x72\x01\x00\xff", "missing_fields"),  # timestamp declared, absent
        (b"\x02\x72\x01\x00\xff" + TS_BYTES[:4], "missing_fields"),  # timestamp cut short
        (b"\x04\x72\x01\x00\xff", "missing_fields"),  # type declared, absent
        (b"\x06\x72\x01\x00\xff" + TS_BYTES, "missing_fields"),  # type after timestamp absent
        (b"\x00\x72\x01\x00\xff\x00", "trailing_bytes"),
        (b"\x04\x72\x01\x00\xff\x01\x01", "trailing_bytes"),
        (b"\x00\x72\x01\x00\xff" + TS_BYTES, "trailing_bytes"),  # timestamp not declared
        (b"\x02\x72\x01\x00\xff\xea\x07\x0d\x17\x02\x0f\x1e", "bad_month"),  # month 13
        (b"\x02\x72\x01\x00\xff\xea\x07\x0b\x20\x02\x0f\x1e", "bad_day"),  # day 32
        (b"\x02\x72\x01\x00\xff\xea\x07\x0b\x17\x18\x0f\x1e", "bad_time"),  # hour 24
        (b"\x02\x72\x01\x00\xff\xea\x07\x0b\x17\x02\x3c\x1e", "bad_time"),  # minute 60
        (b"\x02\x72\x01\x00\xff\xea\x07\x02\x1e\x02\x0f\x1e", "bad_date"),  # 30 February
        (b"\x02\x72\x01\x00\xff\xe8\x03\x0b\x17\x02\x0f\x1e", "bad_year"),  # year 1000
        (b"\x04\x72\x01\x00\xff\x00", "bad_temperature_type"),
        (b"\x04\x72\x01\x00\xff\x0a", "bad_temperature_type"),
        (b"\x00\x01\x00\x80\x00", "reserved_float_value"),
    ],
)
def test_malformed_payloads_raise_clear_errors(payload: bytes, code: str) -> None:
    with pytest.raises(BleParseError) as err:
        parse_temperature_measurement(payload)
    assert err.value.code == code
    assert _has_cjk(err.value.message("zh"))
    assert err.value.message("en") and not _has_cjk(err.value.message("en"))
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("payload", ["00720100ff", None, [0, 0x72, 1, 0, 0xFF], 37.0])
def test_non_bytes_input_is_rejected(payload: object) -> None:
    with pytest.raises(BleParseError) as err:
        parse_temperature_measurement(payload)  # type: ignore[arg-type]
    assert err.value.code == "not_bytes"


def test_random_garbage_never_crashes() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 16)))
        try:
            m = parse_temperature_measurement(payload)
        except BleParseError as err:
            assert err.code
        else:
            assert isinstance(m, TemperatureMeasurement)


# ---------------------------------------------------------------- encoder and round trip


def test_encoder_matches_hand_built_vectors() -> None:
    assert encode_temperature_measurement(37.0) == b"\x00\x72\x01\x00\xff"
    assert encode_temperature_measurement(36.75, exponent=-2) == b"\x00\x5b\x0e\x00\xfe"
    assert encode_temperature_measurement(98.6, "F") == b"\x01\xda\x03\x00\xff"
    assert encode_temperature_measurement(38.3, timestamp=TS) == b"\x02\x7f\x01\x00\xff" + TS_BYTES
    assert (
        encode_temperature_measurement(101.3, "F", TS, TemperatureType.ear)
        == b"\x07\xf5\x03\x00\xff" + TS_BYTES + b"\x03"
    )
    assert encode_temperature_measurement(None, special="nan") == b"\x00\xff\xff\x7f\x00"
    assert encode_temperature_measurement(None, special="nres") == b"\x00\x00\x00\x80\x00"
    assert encode_temperature_measurement(None, special="+inf") == b"\x00\xfe\xff\x7f\x00"
    assert encode_temperature_measurement(None, special="-inf") == b"\x00\x02\x00\x80\x00"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"value": None},  # neither value nor special
        {"value": 37.0, "special": "nan"},  # both
        {"value": 37.0, "unit": "K"},
        {"value": float("nan")},
        {"value": 1e9},  # mantissa does not fit 24 bits at exponent -1
        {"value": 37.0, "exponent": 200},
    ],
)
def test_encoder_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        encode_temperature_measurement(**kwargs)


def _round_trip(
    mantissa: int,
    exponent: int,
    unit: str,
    stamp: datetime | None,
    kind: TemperatureType | None,
) -> None:
    value = mantissa * 10.0**exponent
    frame = encode_temperature_measurement(value, unit, stamp, kind, exponent=exponent)  # type: ignore[arg-type]
    m = parse_temperature_measurement(frame)
    assert (m.mantissa, m.exponent) == (mantissa, exponent)
    assert m.value_raw == pytest.approx(value, rel=1e-12, abs=1e-12)
    assert m.unit == unit
    assert m.timestamp == stamp
    assert m.temperature_type == kind
    assert encode_temperature_measurement(m.value_raw, unit, m.timestamp, kind, exponent=exponent) == frame  # type: ignore[arg-type]


def test_round_trip_loop() -> None:
    rng = random.Random(2026)
    kinds: list[TemperatureType | None] = [None, *TemperatureType]
    for _ in range(2000):
        stamp = (
            datetime(2020, 1, 1) + timedelta(seconds=rng.randrange(0, 10 * 365 * 86400))
            if rng.random() < 0.5
            else None
        )
        _round_trip(
            mantissa=rng.randint(-9999, 9999),
            exponent=rng.choice([-3, -2, -1, 0, 1]),
            unit=rng.choice(["C", "F"]),
            stamp=stamp,
            kind=rng.choice(kinds),
        )


try:
    from hypothesis import given
    from hypothesis import strategies as st
except ImportError:  # the loop above covers the same ground
    pass
else:

    @given(
        mantissa=st.integers(-99999, 99999),
        exponent=st.integers(-4, 2),
        unit=st.sampled_from(["C", "F"]),
        stamp=st.none() | st.datetimes(min_value=datetime(1582, 1, 1), max_value=datetime(9999, 12, 31)),
        kind=st.none() | st.sampled_from(list(TemperatureType)),
    )
    def test_round_trip_hypothesis(
        mantissa: int, exponent: int, unit: str, stamp: datetime | None, kind: TemperatureType | None
    ) -> None:
        _round_trip(mantissa, exponent, unit, stamp.replace(microsecond=0) if stamp else None, kind)


# ---------------------------------------------------------------- simulator


START = datetime(2026, 11, 23, 1, 0)


def test_simulator_frames_parse_with_timestamps_at_the_interval() -> None:
    sim = ThermometerSimulator(start=START, interval=timedelta(minutes=15), seed=3)
    readings = [parse_temperature_measurement(frame) for frame in sim.take(20)]
    assert [r.timestamp for r in readings] == [START + timedelta(minutes=15 * i) for i in range(20)]
    assert all(r.unit == "C" and r.temperature_type is TemperatureType.armpit for r in readings)
    values = [r.value_c for r in readings]
    assert all(v is not None and 36.0 <= v <= 41.5 for v in values)
    assert len(set(values)) > 3  # a curve, not a constant
    # adjacent readings are physiologically close
    assert all(abs(a - b) <= 1.0 for a, b in zip(values, values[1:], strict=False))  # type: ignore[operator]


def test_simulator_is_deterministic_per_seed() -> None:
    assert ThermometerSimulator(start=START, seed=5).take(10) == ThermometerSimulator(
        start=START, seed=5
    ).take(10)
    assert ThermometerSimulator(start=START, seed=5).take(10) != ThermometerSimulator(
        start=START, seed=6
    ).take(10)


def test_simulator_scripted_values_fahrenheit_and_no_timestamp() -> None:
    sim = ThermometerSimulator(
        start=START,
        temperatures_c=[37.0, 38.5, 40.1],
        unit="F",
        include_timestamp=False,
        temperature_type=None,
    )
    frames = sim.take(3)
    assert frames[0] == b"\x01\xda\x03\x00\xff"  # 98.6 °F, no timestamp, no type
    readings = [parse_temperature_measurement(f) for f in frames]
    # 0.1 °F resolution: 40.1 °C → 104.18 °F → sent as 104.2 °F → 40.11 °C
    assert [r.value_c for r in readings] == pytest.approx([37.0, 38.5, 40.1], abs=0.03)
    assert all(r.unit == "F" and r.timestamp is None and r.temperature_type is None for r in readings)


def test_simulator_reconnect_replays_stored_frames() -> None:
    sim = ThermometerSimulator(start=START, memory=4)
    live = sim.take(6)
    assert sim.reconnect() == live[-4:]
    assert sim.reconnect(replay=2) == live[-2:]
    assert sim.reconnect(replay=0) == []


# ---------------------------------------------------------------- de-duplication and ordering


def test_replayed_frames_after_reconnect_are_dropped_and_order_kept() -> None:
    sim = ThermometerSimulator(start=START, seed=1)
    dedup = ReadingDeduplicator()
    live = sim.take(5)
    received = START + timedelta(hours=3)
    assert len(dedup.add_many(parse_temperature_measurement(f, received) for f in live)) == 5
    replay = sim.reconnect()
    assert (
        dedup.add_many(parse_temperature_measurement(f, received + timedelta(minutes=5)) for f in replay)
        == []
    )
    more = sim.take(2)
    assert len(dedup.add_many(parse_temperature_measurement(f, received) for f in more)) == 2
    assert [r.timestamp for r in dedup.readings] == [START + timedelta(minutes=30 * i) for i in range(7)]


def _timed(value: float, minutes: int) -> TemperatureMeasurement:
    return parse_temperature_measurement(
        encode_temperature_measurement(value, timestamp=START + timedelta(minutes=minutes))
    )


def _untimed(
    value: float | None, received_minutes: float, special: str | None = None
) -> TemperatureMeasurement:
    frame = encode_temperature_measurement(value, special=special)  # type: ignore[arg-type]
    return parse_temperature_measurement(frame, received_at=START + timedelta(minutes=received_minutes))


def test_out_of_order_readings_are_placed_by_timestamp() -> None:
    dedup = ReadingDeduplicator()
    for value, minutes in [(38.0, 60), (39.0, 0), (38.5, 30), (37.8, 90)]:
        assert dedup.add(_timed(value, minutes))
    assert [r.value_c for r in dedup.readings] == [39.0, 38.5, 38.0, 37.8]


def test_same_timestamp_different_value_is_kept() -> None:
    dedup = ReadingDeduplicator()
    assert dedup.add(_timed(38.0, 0))
    assert not dedup.add(_timed(38.0, 0))
    assert dedup.add(_timed(38.4, 0))
    assert len(dedup.readings) == 2


def test_untimed_repeats_within_window_are_dropped() -> None:
    dedup = ReadingDeduplicator(window=timedelta(seconds=120))
    assert dedup.add(_untimed(38.2, 0))
    assert not dedup.add(_untimed(38.2, 1.5))  # same value 90 s later: a resend
    assert dedup.add(_untimed(38.6, 1.5))  # different value: a new reading
    assert dedup.add(_untimed(38.2, 10))  # same value well after the window: a new measurement
    assert not dedup.add(_untimed(38.2, 9))  # arrives late but within the window of the 10-min one
    assert [r.value_c for r in dedup.readings] == [38.2, 38.6, 38.2]


def test_untimed_specials_are_deduplicated_too() -> None:
    dedup = ReadingDeduplicator()
    assert dedup.add(_untimed(None, 0, special="nres"))
    assert not dedup.add(_untimed(None, 0.5, special="nres"))
    assert dedup.add(_untimed(None, 0.5, special="nan"))


def test_incomplete_device_date_is_placed_by_receipt_time() -> None:
    dedup = ReadingDeduplicator()
    unknown_year = b"\x02\x72\x01\x00\xff\x00\x00\x0b\x17\x02\x0f\x1e"
    assert dedup.add(parse_temperature_measurement(unknown_year, received_at=START + timedelta(minutes=45)))
    assert dedup.add(_timed(38.0, 30))
    assert [r.value_c for r in dedup.readings] == [38.0, 37.0]


def test_reading_without_any_time_is_a_clear_error() -> None:
    dedup = ReadingDeduplicator()
    with pytest.raises(BleReadingError) as err:
        dedup.add(parse_temperature_measurement(b"\x00\x72\x01\x00\xff"))
    assert err.value.code == "reading_time_missing"
    assert _has_cjk(err.value.zh)


def test_mixing_aware_and_naive_times_is_a_clear_error() -> None:
    dedup = ReadingDeduplicator()
    dedup.add(_timed(38.0, 0))
    aware = parse_temperature_measurement(
        b"\x00\x72\x01\x00\xff", received_at=datetime(2026, 11, 23, tzinfo=UTC)
    )
    with pytest.raises(BleReadingError) as err:
        dedup.add(aware)
    assert err.value.code == "mixed_timezones"
