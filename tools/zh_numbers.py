"""Number words → numbers: Chinese numerals (一/两/十/百/半/三岁半/十二/二十五/三十八点五 …),
Arabic digits and the few English number words people use for ages and durations.

Approximate words follow one documented rule so every caller agrees:
  * "多"/"余"/"几" after a number means "somewhat more": we take the lower third of the implied
    range, i.e. +0.3 of the place of the last significant digit (70多 → 73, 十多 → 13,
    100多 → 130, 1多 → 1.3). Temperature callers add +0.3 °C instead (39度多 → 39.3), because
    a temperature's "range" is the decimal part.
  * "几" alone counts as 3 (几天 → 3), "十几" → 13, "几十" → 30.
  * adjacent digits are a range and give the upper bound (两三天 → 3, 一两个 → 2).
  * "半" is 0.5; a trailing 半 adds 0.5 (三岁半 → 3.5, 一个半 → 1.5).
"""

from __future__ import annotations

import re

ZH_DIGITS: dict[str, int] = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "俩": 2,
    "三": 3,
    "仨": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
    "几": 3,
}
ZH_UNITS: dict[str, int] = {"十": 10, "百": 100, "千": 1000, "万": 10000}

# Regex source for a Chinese numeral (integer part, optional 点-decimal). Callers embed it.
ZH_NUMERAL_RE = r"[零〇一二两俩三仨四五六七八九十百千万几]+(?:点[零〇一二三四五六七八九]+)?"

_EN_SMALL: dict[str, int] = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_EN_TENS: dict[str, int] = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_EN_PHRASES: dict[str, float] = {
    "a": 1,
    "an": 1,
    "a couple of": 2,
    "a couple": 2,
    "couple of": 2,
    "a few": 3,
    "few": 3,
    "several": 3,
    "half a": 0.5,
    "half an": 0.5,
    "a half": 0.5,
    "half": 0.5,
}
_EN_WORD = "|".join(sorted([*_EN_SMALL, *_EN_TENS], key=len, reverse=True))
_EN_TEN = "|".join(_EN_TENS)
_EN_UNIT = "|".join(k for k in _EN_SMALL if _EN_SMALL[k] < 10 and k != "zero")
# Regex source for an English number (digits or words); longest alternatives first.
EN_NUMBER_RE = (
    r"(?:\d+(?:\.\d+)?|a couple of|a couple|couple of|a few|several|half an?|"
    rf"(?:{_EN_TEN})[- ](?:{_EN_UNIT})\b|(?:{_EN_WORD})\b|an?\b)"
)
_EN_COMPOUND = re.compile(rf"^({_EN_TEN})[- ]({_EN_UNIT})$")


def approx_more(value: float) -> float:
    """Value for "N多": the lower third of the range N implies (70 → 73, 39 → 39.3, 100 → 130)."""
    if value >= 10 and value == int(value):
        place, rest = 1, int(value)
        while rest % 10 == 0 and rest >= 10:
            rest //= 10
            place *= 10
        if place > 1:
            return value + 0.3 * place
    return round(value + 0.3, 6)


def _parse_zh_integer(s: str) -> int | None:
    """Chinese integer numeral → int, or None when the string is not one."""
    if not s or any(ch not in ZH_DIGITS and ch not in ZH_UNITS for ch in s):
        return None
    if all(ch in ZH_DIGITS for ch in s):
        digits = [ZH_DIGITS[ch] for ch in s]
        if len(digits) == 2 and digits[1] == digits[0] + 1:  # 两三 → range, upper bound
            return digits[1]
        return int("".join(str(d) for d in digits))  # 二零二四 → 2024
    total = 0  # completed 万-sections
    section = 0
    digit: int | None = None
    last_unit = 10**9  # units inside a section must decrease: 三百二十
    zero_seen = False
    after_wan = False  # 三万五 means 35000
    for ch in s:
        if ch in ZH_DIGITS:
            d = ZH_DIGITS[ch]
            if d == 0:
                zero_seen = True
                continue
            if digit is not None:
                if d == digit + 1:  # 十一二 → range, upper bound
                    digit = d
                    continue
                return None
            digit = d
        else:
            unit = ZH_UNITS[ch]
            if unit == 10000:
                section += digit or 0
                total += (section or 1) * 10000
                section, digit, last_unit, zero_seen = 0, None, 10**9, False
                after_wan = True
                continue
            if unit >= last_unit:
                return None
            section += (1 if digit is None else digit) * unit
            digit, last_unit, zero_seen = None, unit, False
    if digit is not None:
        # 一百二 means 120 (colloquial elision of the next unit), 一百零二 means 102.
        if zero_seen:
            section += digit
        elif 100 <= last_unit < 10**9:
            section += digit * (last_unit // 10)
        elif after_wan and section == 0:
            section += digit * 1000
        else:
            section += digit
    return total + section


def _parse_zh_core(s: str) -> float | None:
    if "点" in s:
        whole, _, frac = s.partition("点")
        whole_value = _parse_zh_integer(whole)
        if whole_value is None or not frac or any(ch not in ZH_DIGITS or ch == "几" for ch in frac):
            return None
        return float(f"{whole_value}." + "".join(str(ZH_DIGITS[ch]) for ch in frac))
    value = _parse_zh_integer(s)
    return None if value is None else float(value)


_MEASURE_WORDS = "个岁年月天周小时"
_ARABIC_WITH_UNIT = re.compile(r"^(\d+(?:\.\d+)?)([十百千万]?)$")


def parse_zh_number(text: str) -> float | None:
    """Chinese (or Arabic, or mixed like 3万) numeral → float; None when it is not a number.

    Examples: 一 → 1, 两 → 2, 十二 → 12, 二十五 → 25, 一百零五 → 105, 三十八点五 → 38.5,
    半 → 0.5, 三岁半 → 3.5, 一个半 → 1.5, 七十多 → 73, 十几 → 13, 两三 → 3.
    """
    s = re.sub(r"\s+", "", text or "")
    if not s:
        return None
    if s in ("半", "一半"):
        return 0.5
    half = False
    if s.endswith("半") and len(s) > 1:
        half = True
        s = s[:-1].rstrip(_MEASURE_WORDS) if s[-2] in _MEASURE_WORDS else s[:-1]
    more = False
    if s and s[-1] in "多余" and len(s) > 1:
        more = True
        s = s[:-1]
    elif len(s) > 1 and s[-1] == "个":
        s = s[:-1]
    m = _ARABIC_WITH_UNIT.match(s)
    if m:
        value: float | None = float(m.group(1)) * (ZH_UNITS[m.group(2)] if m.group(2) else 1)
    else:
        value = _parse_zh_core(s)
    if value is None:
        return None
    if more:
        value = approx_more(value)
    if half:
        value += 0.5
    return value


def parse_en_number(text: str) -> float | None:
    """English number word(s) or digits → float: "two" → 2, "twenty-five" → 25, "a few" → 3."""
    s = " ".join((text or "").lower().split())
    if not s:
        return None
    try:
        return float(s)
    except ValueError:
        pass
    if s in _EN_PHRASES:
        return float(_EN_PHRASES[s])
    if s in _EN_SMALL:
        return float(_EN_SMALL[s])
    if s in _EN_TENS:
        return float(_EN_TENS[s])
    m = _EN_COMPOUND.match(s)
    if m:
        return float(_EN_TENS[m.group(1)] + _EN_SMALL[m.group(2)])
    return None


def parse_number(text: str) -> float | None:
    """Any number token this project meets: Arabic, Chinese or English words."""
    value = parse_en_number(text)
    return value if value is not None else parse_zh_number(text)
