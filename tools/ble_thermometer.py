"""Bluetooth Health Thermometer (service 0x1809): the Temperature Measurement characteristic 0x2A1C.

Frame layout (Bluetooth Health Thermometer Service 1.0 / GATT Specification Supplement):

    flags      uint8    bit0 unit (0 = °C, 1 = °F), bit1 timestamp present, bit2 type present;
                        bits 3-7 reserved — ignored on receipt
    value      FLOAT    IEEE-11073 32-bit float, little-endian: signed 24-bit mantissa (low 3
                        bytes), signed 8-bit exponent (high byte); value = mantissa * 10**exponent
    timestamp  7 bytes  (if bit1) year uint16 LE, month, day, hours, minutes, seconds;
                        year / month / day 0 mean "not known"
    type       uint8    (if bit2) 1 armpit … 9 tympanum

Special FLOAT values (exponent 0): NaN 0x007FFFFF, NRes 0x00800000, +INF 0x007FFFFE,
-INF 0x00800002; 0x00800001 is reserved and rejected.

Parsing never crashes on device input: every malformed frame raises BleParseError with a stable
code and zh/en messages. Also here: the encoder (inverse of the parser, used by the simulator and
tests), a simulator of a real thermometer, and a de-duplicator for readings resent after a reconnect.
"""

from __future__ import annotations

import bisect
import random
import struct
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

SERVICE_UUID16 = 0x1809
TEMPERATURE_MEASUREMENT_UUID16 = 0x2A1C

FLAG_FAHRENHEIT = 0x01
FLAG_TIMESTAMP = 0x02
FLAG_TYPE = 0x04

FLOAT_NAN = 0x007FFFFF
FLOAT_NRES = 0x00800000
FLOAT_POS_INF = 0x007FFFFE
FLOAT_NEG_INF = 0x00800002
FLOAT_RESERVED = 0x00800001

Special = Literal["nan", "nres", "+inf", "-inf"]
SPECIAL_BY_RAW: dict[int, Special] = {
    FLOAT_NAN: "nan",
    FLOAT_NRES: "nres",
    FLOAT_POS_INF: "+inf",
    FLOAT_NEG_INF: "-inf",
}
RAW_BY_SPECIAL: dict[Special, int] = {name: raw for raw, name in SPECIAL_BY_RAW.items()}

# Mantissas whose bit patterns are the special values; the encoder never emits them for numbers.
MANTISSA_MAX = 0x7FFFFD  # 8388605
MANTISSA_MIN = -MANTISSA_MAX

_VALUE_LEN = 4
_TIMESTAMP_LEN = 7
_MIN_YEAR, _MAX_YEAR = 1582, 9999  # GATT date-time range (0 = unknown)


class TemperatureType(StrEnum):
    armpit = "armpit"
    body = "body"  # general body temperature
    ear = "ear"  # ear lobe
    finger = "finger"
    gastro = "gastro"  # gastro-intestinal tract
    mouth = "mouth"
    rectum = "rectum"
    toe = "toe"
    tympanum = "tympanum"  # ear drum


TYPE_BY_CODE: dict[int, TemperatureType] = {code: t for code, t in enumerate(TemperatureType, start=1)}
CODE_BY_TYPE: dict[TemperatureType, int] = {t: code for code, t in TYPE_BY_CODE.items()}


class BleReadingError(ValueError):
    """A thermometer frame or reading that cannot be used; stable code plus zh/en messages."""

    def __init__(self, code: str, zh: str, en: str) -> None:
        super().__init__(f"{code}: {en}")
        self.code, self.zh, self.en = code, zh, en

    def message(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


class BleParseError(BleReadingError):
    """A malformed Temperature Measurement payload."""


class TemperatureMeasurement(BaseModel):
    model_config = ConfigDict(frozen=True)

    value_c: float | None  # None for the special values
    value_raw: float | None  # in the unit the device sent (°C or °F)
    unit: Literal["C", "F"]
    mantissa: int
    exponent: int
    timestamp: datetime | None  # device clock; None if absent or partly unknown
    timestamp_incomplete: bool = False  # the device sent a timestamp with year/month/day 0
    temperature_type: TemperatureType | None
    special: Special | None
    flags: int
    received_at: datetime | None = None

    @property
    def measured_at(self) -> datetime | None:
        """Best known time of the measurement: the device timestamp, else when it was received."""
        return self.timestamp or self.received_at


def _error(code: str, zh: str, en: str) -> BleParseError:
    return BleParseError(code, zh, en)


def decode_float32(raw: int) -> tuple[int, int, Special | None, float | None]:
    """(mantissa, exponent, special, value) of an IEEE-11073 32-bit FLOAT given as uint32."""
    if raw == FLOAT_RESERVED:
        raise _error(
            "reserved_float_value",
            "体温数值使用了保留的特殊值（0x00800001），无法解析。",
            "The temperature uses the reserved special FLOAT value 0x00800001.",
        )
    mantissa = raw & 0xFFFFFF
    if mantissa & 0x800000:
        mantissa -= 0x1000000
    exponent = (raw >> 24) & 0xFF
    if exponent & 0x80:
        exponent -= 0x100
    special = SPECIAL_BY_RAW.get(raw)
    if special is not None:
        return mantissa, exponent, special, None
    # Decimal avoids binary noise (367 * 0.1 == 36.7000…03).
    return mantissa, exponent, None, float(Decimal(mantissa).scaleb(exponent))


def encode_float32(value: float, exponent: int = -1) -> int:
    """uint32 IEEE-11073 FLOAT for value at the given decimal exponent (e.g. -1 → 0.1 steps)."""
    if not -128 <= exponent <= 127:
        raise ValueError(f"exponent {exponent} outside the signed 8-bit range")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("use special= for NaN / infinity")
    mantissa = int(Decimal(repr(value)).scaleb(-exponent).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    if not MANTISSA_MIN <= mantissa <= MANTISSA_MAX:
        raise ValueError(f"{value} does not fit a 24-bit mantissa at exponent {exponent}")
    return ((exponent & 0xFF) << 24) | (mantissa & 0xFFFFFF)


def fahrenheit_to_celsius(value_f: float) -> float:
    return round((value_f - 32.0) * 5.0 / 9.0, 2)


def celsius_to_fahrenheit(value_c: float) -> float:
    return round(value_c * 9.0 / 5.0 + 32.0, 2)


def _parse_timestamp(chunk: bytes, received_at: datetime | None) -> tuple[datetime | None, bool]:
    year, month, day, hours, minutes, seconds = struct.unpack("<HBBBBB", chunk)
    if month > 12:
        raise _error("bad_month", f"时间戳月份无效：{month}。", f"Invalid month in timestamp: {month}.")
    if day > 31:
        raise _error("bad_day", f"时间戳日期无效：{day}。", f"Invalid day in timestamp: {day}.")
    if hours > 23 or minutes > 59 or seconds > 59:
        raise _error(
            "bad_time",
            f"时间戳时分秒无效：{hours}:{minutes}:{seconds}。",
            f"Invalid time of day in timestamp: {hours}:{minutes}:{seconds}.",
        )
    if year != 0 and not _MIN_YEAR <= year <= _MAX_YEAR:
        raise _error("bad_year", f"时间戳年份无效：{year}。", f"Invalid year in timestamp: {year}.")
    if 0 in (year, month, day):
        return None, True  # the device does not know the date: fall back on received_at
    try:
        stamp = datetime(year, month, day, hours, minutes, seconds)
    except ValueError:
        raise _error(
            "bad_date",
            f"时间戳日期不存在：{year}-{month:02d}-{day:02d}。",
            f"The timestamp date does not exist: {year}-{month:02d}-{day:02d}.",
        ) from None
    # The device clock carries no zone; assume it is set to the receiver's local zone so that
    # timestamps and receipt times stay comparable.
    if received_at is not None and received_at.tzinfo is not None:
        stamp = stamp.replace(tzinfo=received_at.tzinfo)
    return stamp, False


def parse_temperature_measurement(
    payload: bytes | bytearray | memoryview, received_at: datetime | None = None
) -> TemperatureMeasurement:
    """Parse one 0x2A1C notification/indication value. Raises BleParseError on malformed input."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise _error(
            "not_bytes",
            f"体温数据应为字节，收到的是 {type(payload).__name__}。",
            f"A temperature frame must be bytes, got {type(payload).__name__}.",
        )
    data = bytes(payload)
    if len(data) < 1 + _VALUE_LEN:
        raise _error(
            "too_short",
            f"体温数据太短：{len(data)} 字节，至少需要 5 字节（标志 + 温度）。",
            f"Temperature frame too short: {len(data)} bytes, need at least 5 (flags + value).",
        )
    flags = data[0]
    unit: Literal["C", "F"] = "F" if flags & FLAG_FAHRENHEIT else "C"
    has_timestamp = bool(flags & FLAG_TIMESTAMP)
    has_type = bool(flags & FLAG_TYPE)
    expected = 1 + _VALUE_LEN + (_TIMESTAMP_LEN if has_timestamp else 0) + (1 if has_type else 0)
    if len(data) < expected:
        missing = [name for name, present in (("timestamp", has_timestamp), ("type", has_type)) if present]
        raise _error(
            "missing_fields",
            f"标志位声明了 {'、'.join(missing)} 字段，但数据只有 {len(data)} 字节（应为 {expected}）。",
            f"Flags declare {', '.join(missing)} but the frame has {len(data)} bytes (expected {expected}).",
        )
    if len(data) > expected:
        raise _error(
            "trailing_bytes",
            f"体温数据末尾有多余的 {len(data) - expected} 字节（应为 {expected} 字节）。",
            f"Temperature frame has {len(data) - expected} unexpected trailing bytes (expected {expected}).",
        )

    (raw_value,) = struct.unpack_from("<I", data, 1)
    mantissa, exponent, special, value_raw = decode_float32(raw_value)
    offset = 1 + _VALUE_LEN

    timestamp: datetime | None = None
    incomplete = False
    if has_timestamp:
        timestamp, incomplete = _parse_timestamp(data[offset : offset + _TIMESTAMP_LEN], received_at)
        offset += _TIMESTAMP_LEN

    temperature_type: TemperatureType | None = None
    if has_type:
        code = data[offset]
        if code not in TYPE_BY_CODE:
            raise _error(
                "bad_temperature_type",
                f"测温部位代码无效：{code}（应为 1–9）。",
                f"Invalid temperature type code {code} (expected 1-9).",
            )
        temperature_type = TYPE_BY_CODE[code]

    value_c: float | None = None
    if value_raw is not None:
        value_c = fahrenheit_to_celsius(value_raw) if unit == "F" else value_raw
    return TemperatureMeasurement(
        value_c=value_c,
        value_raw=value_raw,
        unit=unit,
        mantissa=mantissa,
        exponent=exponent,
        timestamp=timestamp,
        timestamp_incomplete=incomplete,
        temperature_type=temperature_type,
        special=special,
        flags=flags,
        received_at=received_at,
    )


def encode_temperature_measurement(
    value: float | None,
    unit: Literal["C", "F"] = "C",
    timestamp: datetime | None = None,
    temperature_type: TemperatureType | None = None,
    *,
    special: Special | None = None,
    exponent: int = -1,
) -> bytes:
    """Build a 0x2A1C frame: value in `unit`, rounded to 10**exponent; or a special value."""
    if unit not in ("C", "F"):
        raise ValueError(f"unit must be 'C' or 'F', got {unit!r}")
    if (value is None) == (special is None):
        raise ValueError("give exactly one of value and special")
    flags = 0
    if unit == "F":
        flags |= FLAG_FAHRENHEIT
    if timestamp is not None:
        flags |= FLAG_TIMESTAMP
    if temperature_type is not None:
        flags |= FLAG_TYPE
    raw = RAW_BY_SPECIAL[special] if special is not None else encode_float32(float(value or 0.0), exponent)
    frame = bytearray([flags]) + struct.pack("<I", raw)
    if timestamp is not None:
        if not _MIN_YEAR <= timestamp.year <= _MAX_YEAR:
            raise ValueError(f"year {timestamp.year} outside {_MIN_YEAR}-{_MAX_YEAR}")
        frame += struct.pack(
            "<HBBBBB",
            timestamp.year,
            timestamp.month,
            timestamp.day,
            timestamp.hour,
            timestamp.minute,
            timestamp.second,
        )
    if temperature_type is not None:
        frame.append(CODE_BY_TYPE[TemperatureType(temperature_type)])
    return bytes(frame)


class ThermometerSimulator:
    """A thermometer that measures every `interval` and notifies 0x2A1C frames.

    Like real devices it keeps its recent measurements and resends them after a reconnect, so
    the receiver sees repeats (and, interleaved with live frames, out-of-order readings).
    Deterministic for a given seed.
    """

    def __init__(
        self,
        *,
        start: datetime,
        interval: timedelta = timedelta(minutes=30),
        temperatures_c: Sequence[float] | None = None,
        unit: Literal["C", "F"] = "C",
        include_timestamp: bool = True,
        temperature_type: TemperatureType | None = TemperatureType.armpit,
        exponent: int = -1,
        seed: int = 0,
        memory: int = 10,
    ) -> None:
        self.clock = start
        self.interval = interval
        self.unit: Literal["C", "F"] = unit
        self.include_timestamp = include_timestamp
        self.temperature_type = temperature_type
        self.exponent = exponent
        self._script = list(temperatures_c) if temperatures_c is not None else None
        self._rng = random.Random(seed)
        self._current_c = 38.3 + self._rng.uniform(-0.3, 0.3)
        self._step = 0
        self._stored: list[bytes] = []
        self._memory = memory

    def _next_temperature_c(self) -> float:
        if self._script is not None:
            return self._script[self._step % len(self._script)]
        # A fever curve: slow oscillation (antipyretic / circadian swings) plus measurement noise.
        drift = 0.35 if (self._step // 6) % 2 == 0 else -0.35
        self._current_c = min(41.0, max(36.2, self._current_c + drift * self._rng.random()))
        return round(self._current_c + self._rng.gauss(0.0, 0.08), 1)

    def next_frame(self) -> bytes:
        """Measure once, advance the clock, and return the frame as notified."""
        value_c = self._next_temperature_c()
        value = celsius_to_fahrenheit(value_c) if self.unit == "F" else value_c
        frame = encode_temperature_measurement(
            value,
            self.unit,
            self.clock if self.include_timestamp else None,
            self.temperature_type,
            exponent=self.exponent,
        )
        self._stored = (self._stored + [frame])[-self._memory :]
        self._step += 1
        self.clock += self.interval
        return frame

    def take(self, count: int) -> list[bytes]:
        return [self.next_frame() for _ in range(count)]

    def reconnect(self, replay: int | None = None) -> list[bytes]:
        """Frames resent after a reconnect: the last `replay` stored ones (all stored if None)."""
        if replay is None:
            return list(self._stored)
        return self._stored[-replay:] if replay > 0 else []


class ReadingDeduplicator:
    """Keeps each distinct reading once, in measurement-time order.

    A repeat is the same device timestamp and value, or — for readings without a device
    timestamp — the same value received within `window` of an earlier one. Readings that arrive
    out of order are placed by their time (device timestamp, else received_at).
    """

    def __init__(self, window: timedelta = timedelta(seconds=120)) -> None:
        self.window = window
        self._timed_keys: set[tuple[datetime, str | float | None]] = set()
        self._entries: list[tuple[datetime, int, TemperatureMeasurement]] = []
        self._untimed: list[tuple[datetime, str | float | None]] = []  # sorted by received time
        self._seq = 0
        self._aware: bool | None = None

    @staticmethod
    def _value_key(reading: TemperatureMeasurement) -> str | float | None:
        return reading.special if reading.special is not None else reading.value_c

    def _check_time(self, reading: TemperatureMeasurement) -> datetime:
        at = reading.measured_at
        if at is None:
            raise BleReadingError(
                "reading_time_missing",
                "读数既没有设备时间戳也没有接收时间，无法排序。",
                "The reading has neither a device timestamp nor a receipt time, so it cannot be placed.",
            )
        aware = at.tzinfo is not None
        if self._aware is None:
            self._aware = aware
        elif self._aware != aware:
            raise BleReadingError(
                "mixed_timezones",
                "读数时间有的带时区、有的不带，无法比较；请统一时区。",
                "Some reading times carry a time zone and others do not; use one convention.",
            )
        return at

    def add(self, reading: TemperatureMeasurement) -> bool:
        """True if the reading is new and was kept; False if it repeats one already kept."""
        at = self._check_time(reading)
        value = self._value_key(reading)
        if reading.timestamp is not None:
            key = (reading.timestamp, value)
            if key in self._timed_keys:
                return False
            self._timed_keys.add(key)
        else:
            lo = bisect.bisect_left(self._untimed, at - self.window, key=lambda item: item[0])
            hi = bisect.bisect_right(self._untimed, at + self.window, key=lambda item: item[0])
            if any(v == value for _, v in self._untimed[lo:hi]):
                return False
            bisect.insort(self._untimed, (at, value), key=lambda item: item[0])
        self._seq += 1
        bisect.insort(self._entries, (at, self._seq, reading), key=lambda item: (item[0], item[1]))
        return True

    def add_many(self, readings: Iterable[TemperatureMeasurement]) -> list[TemperatureMeasurement]:
        """Add readings in arrival order; return those that were new."""
        return [reading for reading in readings if self.add(reading)]

    @property
    def readings(self) -> list[TemperatureMeasurement]:
        return [reading for _, _, reading in self._entries]
