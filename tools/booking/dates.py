"""Date and time phrases of booking requests ("明天上午", "下周三下午3点", "11月28号", "next Monday
morning", "25 Nov") resolved against a given `now` in the clinic's time zone.

Conventions (documented because people disagree about them):
  * Weeks start on Monday. "下周三" / "next Wednesday" = Wednesday of next calendar week;
    "这周三" / "本周三" = Wednesday of this week (past -> error); "周三" / "星期三" / "Wednesday" /
    "this Wednesday" alone = the next Wednesday on or after today (today only while its session,
    or the named half-day or time, is still open).
  * "M月D日" without a year: this year; if that is more than 180 days ago it means next year
    ("1月5日" said in November), otherwise it is in the past (error "date_in_past").
    A bare "D号" is this month; if it was more than 7 days ago it means next month.
  * A clock time of 1-6 without 上午/下午/am/pm is taken as afternoon (clinics are closed at 3 am).
  * 中午/晚上/傍晚/evening map to the "pm" half-day.

parse_when() reads a phrase the person gave as a date (form field, "which day?" answer) and raises
DateParseError for anything it cannot use. find_when() looks for the date inside free text
("帮我挂明天上午皮肤科的号") and returns None when there is none; narrative past words ("昨天开始
发烧") are skipped there, and numbers that are not dates ("3天", "39度", "1/2片") are never read as
dates. Impossible dates ("13月5日", "2月30日", "下周八", "星期零") raise in both.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from tools.booking.errors import DateParseError
from tools.booking.models import HalfDay, SessionTimes

DEFAULT_TZ = "Asia/Shanghai"
ROLL_TO_NEXT_YEAR_DAYS = 180  # "1月5日" said in November means next January
ROLL_TO_NEXT_MONTH_DAYS = 7  # "5号" said on the 23rd means next month's 5th


class WhenSpec(BaseModel):
    """What a phrase says about when: any of day, half-day and clock time (None = not said)."""

    model_config = ConfigDict(frozen=True)

    date: dt.date | None = None
    half_day: HalfDay | None = None
    time: dt.time | None = None
    text: str = ""  # the phrase as found (normalised), for echoing back


# ---- normalisation and numbers ----

_TRANSLATE = str.maketrans(
    {
        **{chr(0xFF10 + i): str(i) for i in range(10)},
        "：": ":",
        "／": "/",
        "－": "-",
        "．": ".",
        "　": " ",
        "，": ",",
        "號": "号",
        "點": "点",
        "時": "时",
        "禮": "礼",
        "後": "后",
        "週": "周",
        "兩": "两",
        "個": "个",
        "這": "这",
    }
)
_ZH_DIGIT = {
    "零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4,
    "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
}  # fmt: skip
ZH_NUM = r"[零〇一二两三四五六七八九十廿卅]"
NUM = rf"(?:\d{{1,2}}|{ZH_NUM}{{1,3}})"


def _normalise(text: str) -> str:
    return " ".join(text.translate(_TRANSLATE).lower().split())


def _num(s: str) -> int | None:
    """ASCII digits or a Chinese numeral up to 99 (十二, 二十八, 廿八, 卅一); 4-digit years digit-wise."""
    s = s.strip()
    if re.fullmatch(r"[0-9]+", s):
        return int(s)
    if not s or any(c not in _ZH_DIGIT and c not in "十廿卅" for c in s):
        return None
    if not any(c in "十廿卅" for c in s):
        if len(s) == 1:
            return _ZH_DIGIT[s]
        if len(s) == 4:  # a year: 二〇二六
            return int("".join(str(_ZH_DIGIT[c]) for c in s))
        return None
    tens_char = next(c for c in s if c in "十廿卅")
    head, _, tail = s.partition(tens_char)
    if tens_char == "十":
        if len(head) > 1 or (head and head not in _ZH_DIGIT):
            return None
        tens = _ZH_DIGIT[head] if head else 1
    else:
        if head:
            return None
        tens = 2 if tens_char == "廿" else 3
    if len(tail) > 1 or (tail and tail not in _ZH_DIGIT):
        return None
    return tens * 10 + (_ZH_DIGIT[tail] if tail else 0)


# ---- tokens ----


@dataclass
class _Token:
    start: int
    end: int
    kind: str  # "date" | "half" | "time" | "vague" | "error"
    date: dt.date | None = None
    upcoming_weekday: int | None = None  # "周三" alone: resolved with the phrase's half-day/time
    half: HalfDay | None = None
    hour: int | None = None
    minute: int = 0
    meridiem: str | None = None  # "am"/"pm" written with the time (3pm)
    relative: bool = False  # from a relative word (今天, 下周三, yesterday), not written digits
    error: DateParseError | None = None


@dataclass
class _Ctx:
    text: str
    today: dt.date
    full: bool  # parse_when: the whole text is meant as a date phrase
    tokens: list[_Token] = field(default_factory=list)


def _valid_day(year: int | None, month: int, day: int, raw: str) -> DateParseError | None:
    if not 1 <= month <= 12:
        return DateParseError("bad_month", month=month, text=raw)
    limit = calendar.monthrange(year or 2000, month)[1]  # 2000 is a leap year: 2月29日 exists
    if not 1 <= day <= limit:
        return DateParseError("bad_day", month=month, day=day, text=raw)
    return None


def _month_day(ctx: _Ctx, m: re.Match[str], year: int | None, month: int, day: int) -> _Token:
    raw = m.group(0)
    err = _valid_day(year, month, day, raw)
    if err:
        return _Token(m.start(), m.end(), "error", error=err)
    if year is not None:
        return _Token(m.start(), m.end(), "date", date=dt.date(year, month, day))
    year = ctx.today.year
    if (ctx.today - _safe_date(year, month, day)).days > ROLL_TO_NEXT_YEAR_DAYS:
        year += 1
    err = _valid_day(year, month, day, raw)
    if err:
        return _Token(m.start(), m.end(), "error", error=err)
    return _Token(m.start(), m.end(), "date", date=dt.date(year, month, day))


def _safe_date(year: int, month: int, day: int) -> dt.date:
    return dt.date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _h_iso(ctx: _Ctx, m: re.Match[str]) -> _Token | None:
    return _month_day(ctx, m, int(m["y"]), int(m["m"]), int(m["d"]))


def _h_zh_date(ctx: _Ctx, m: re.Match[str]) -> _Token | None:
    month, day = _num(m["m"]), _num(m["d"])
    year = _num(m["y"]) if m["y"] else None
    if month is None or day is None or (m["y"] and year is None):
        return None
    # "3月5" without 日/号 only with digits and nothing count-like after it
    if not m["suf"] and (not m["d"].isdigit() or ctx.text[m.end() : m.end() + 1] in set("天个周岁次年月")):
        return None
    return _month_day(ctx, m, year, month, day)


def _h_month_rel_day(ctx: _Ctx, m: re.Match[str]) -> _Token | None:
    day = _num(m["d"])
    if day is None:
        return None
    first = ctx.today.replace(day=1)
    if m["pre"].startswith("下"):
        first = (first + dt.timedelta(days=32)).replace(day=1)
    elif m["pre"].startswith("上"):
        first = (first - dt.timedelta(days=1)).replace(day=1)
    return _month_day(ctx, m, first.year, first.month, day)


_NOT_A_DAY_AFTER = set("楼床门窗线房病机厅口室柜台位码源院桌车线")


def _h_bare_day(ctx: _Ctx, m: re.Match[str]) -> _Token | None:
    if ctx.text[m.end() : m.end() + 1] in _NOT_A_DAY_AFTER or ctx.text[m.start() - 1 : m.start()] == "第":
        return None
    if m["suf"] == "日" and not m["d"].isdigit():  # 一日三次 = once a day, not the 1st
        return None
    day = _num(m["d"])
    if day is None:
        return None
    today = ctx.today
    month_first = today.replace(day=1)
    if day < today.day and today.day - day > ROLL_TO_NEXT_MONTH_DAYS:
        month_first = (month_first + dt.timedelta(days=32)).replace(day=1)
    return _month_day(ctx, m, month_first.year, month_first.month, day)


_EN_MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
EN_MONTH = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"  # noqa: E501


def _h_en_date(ctx: _Ctx, m: re.Match[str]) -> _Token | None:
    month = _EN_MONTHS[m["mon"][:3]]
    year = int(m["y"]) if m["y"] else None
    return _month_day(ctx, m, year, month, int(m["d"]))


def _h_en_ordinal(ctx: _Ctx, m: re.Match[str]) -> _Token | None:
    return _h_bare_day(ctx, m)


def _h_slash(ctx: _Ctx, m: re.Match[str]) -> _Token | None:
    return _month_day(ctx, m, None, int(m["m"]), int(m["d"]))


_REL_DAYS = {
    "大后天": 3, "后天": 2, "明天": 1, "明日": 1, "明儿": 1, "今天": 0, "今日": 0, "今儿": 0,
    "大前天": -3, "前天": -2, "昨天": -1, "昨日": -1, "昨儿": -1,
    "明早": 1, "明晚": 1, "今早": 0, "今晨": 0, "今晚": 0, "昨晚": -1,
    "day after tomorrow": 2, "the day after tomorrow": 2, "tomorrow": 1, "tmr": 1, "tmrw": 1,
    "today": 0, "tonight": 0, "yesterday": -1,
}  # fmt: skip
_REL_HALF: dict[str, HalfDay] = {"明早": "am", "明晚": "pm", "今早": "am", "今晨": "am", "今晚": "pm",
                                 "昨晚": "pm", "tonight": "pm"}  # fmt: skip


def _h_relative(ctx: _Ctx, m: re.Match[str]) -> _Token | None:
    word = m.group(0)
    return _Token(
        m.start(), m.end(), "date", date=ctx.today + dt.timedelta(days=_REL_DAYS[word]),
        half=_REL_HALF.get(word), relative=True,
    )  # fmt: skip


def _h_this_part(ctx: _Ctx, m: re.Match[str]) -> _Token | None:
    half: HalfDay = "am" if m["part"] == "morning" else "pm"
    return _Token(m.start(), m.end(), "date", date=ctx.today, half=half, relative=True)


_ZH_WEEKDAY = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "七": 6}
_DIGIT_WEEKDAY = {"1": 0, "2": 1, "3": 2, "4": 3, "5": 4, "6": 5, "7": 6}


def _week_offset(prefix: str) -> int | None:
    """Weeks from this week for a 下/这/上 prefix; None = no prefix (the upcoming weekday)."""
    if not prefix:
        return None
    if prefix.startswith("下下"):
        return 2
    if prefix.startswith("下"):
        return 1
    if prefix.startswith("上上"):
        return -2
    if prefix.startswith("上"):
        return -1
    return 0  # 这 / 本


def _weekday_token(ctx: _Ctx, m: re.Match[str], weekday: int, offset: int | None) -> _Token:
    if offset is None:
        return _Token(m.start(), m.end(), "date", upcoming_weekday=weekday, relative=True)
    monday = ctx.today - dt.timedelta(days=ctx.today.weekday())
    day = monday + dt.timedelta(days=7 * offset + weekday)
    return _Token(m.start(), m.end(), "date", date=day, relative=True)


def _h_zh_weekday(ctx: _Ctx, m: re.Match[str]) -> _Token | None:
    x = m["x"]
    nxt = ctx.text[m.end() : m.end() + 2]
    # words that merely start with a weekday character: 这周一直…, 周一下子, 这周天气, 周十分…
    if x == "一" and (nxt[:1] in set("直共起点些样般切定会") or (nxt[:1] == "下" and nxt != "下午")):
        return None
    if x == "天" and nxt[:1] in set("气数"):
        return None
    if nxt[:1] in set("次个天年月岁多几来分钟号"):
        return None
    weekday = _ZH_WEEKDAY.get(x, _DIGIT_WEEKDAY.get(x))
    if weekday is None:
        return _Token(m.start(), m.end(), "error", error=DateParseError("bad_weekday", text=m.group(0)))
    return _weekday_token(ctx, m, weekday, _week_offset(m["pre"] or ""))


def _h_zh_weekend(ctx: _Ctx, m: re.Match[str]) -> _Token | None:
    offset = _week_offset(m["pre"] or "")
    if offset is None:
        if ctx.today.weekday() == 6:
            return _Token(m.start(), m.end(), "date", date=ctx.today, relative=True)
        return _weekday_token(ctx, m, 5, None)
    return _weekday_token(ctx, m, 5, offset)


def _h_zh_vague(ctx: _Ctx, m: re.Match[str]) -> _Token | None:
    past = (m["pre"] or "").startswith("上")
    return _Token(m.start(), m.end(), "vague", relative=True, date=dt.date.min if past else None)


_EN_WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_EN_ABBREVIATIONS = {"mon", "tue", "tues", "wed", "thu", "thur", "thurs", "fri", "sat", "sun"}


def _h_en_weekday(ctx: _Ctx, m: re.Match[str]) -> _Token | None:
    pre = m["pre"] or ""
    if m["day"] in _EN_ABBREVIATIONS and not pre and not ctx.full:
        return None  # "sat", "sun", "wed" are ordinary words in free text
    weekday = _EN_WEEKDAYS[m["day"][:3]]
    offset = {"next": 1, "last": -1}.get(pre)  # "this"/"coming"/"on"/none: the upcoming one
    return _weekday_token(ctx, m, weekday, offset)


def _h_en_weekend(ctx: _Ctx, m: re.Match[str]) -> _Token | None:
    if m["pre"] == "next":
        return _weekday_token(ctx, m, 5, 1)
    if ctx.today.weekday() == 6:
        return _Token(m.start(), m.end(), "date", date=ctx.today, relative=True)
    return _weekday_token(ctx, m, 5, None)


def _h_en_vague(ctx: _Ctx, m: re.Match[str]) -> _Token | None:
    past = m["pre"] == "last"
    return _Token(m.start(), m.end(), "vague", relative=True, date=dt.date.min if past else None)


_HALF_WORDS: dict[str, HalfDay] = {
    "上午": "am", "早上": "am", "早晨": "am", "清早": "am", "一大早": "am", "大清早": "am", "凌晨": "am",
    "中午": "pm", "下午": "pm", "傍晚": "pm", "晚上": "pm", "夜里": "pm",
    "morning": "am", "afternoon": "pm", "evening": "pm",
}  # fmt: skip


def _h_half(ctx: _Ctx, m: re.Match[str]) -> _Token | None:
    return _Token(m.start(), m.end(), "half", half=_HALF_WORDS[m.group(0)])


def _h_clock(ctx: _Ctx, m: re.Match[str]) -> _Token | None:
    hour, minute = int(m["h"]), int(m["mi"])
    meridiem = _meridiem(m["ap"])
    if hour > 23 or minute > 59 or (meridiem and not 1 <= hour <= 12):
        return _Token(m.start(), m.end(), "error", error=DateParseError("bad_time", text=m.group(0)))
    return _Token(m.start(), m.end(), "time", hour=hour, minute=minute, meridiem=meridiem)


def _h_en_time(ctx: _Ctx, m: re.Match[str]) -> _Token | None:
    hour, minute = int(m["h"]), int(m["mi"] or 0)
    if not 1 <= hour <= 12 or minute > 59:
        return _Token(m.start(), m.end(), "error", error=DateParseError("bad_time", text=m.group(0)))
    return _Token(m.start(), m.end(), "time", hour=hour, minute=minute, meridiem=_meridiem(m["ap"]))


def _h_at_time(ctx: _Ctx, m: re.Match[str]) -> _Token | None:
    hour, minute = int(m["h"]), int(m["mi"] or 0)
    if hour > 23 or minute > 59:
        return None
    return _Token(m.start(), m.end(), "time", hour=hour, minute=minute)


def _h_noon(ctx: _Ctx, m: re.Match[str]) -> _Token | None:
    return _Token(m.start(), m.end(), "time", hour=12, minute=0, half="pm")


def _meridiem(raw: str | None) -> str | None:
    if not raw:
        return None
    return "pm" if raw.replace(".", "").strip() == "pm" else "am"


def _h_zh_clock(ctx: _Ctx, m: re.Match[str]) -> _Token | None:
    after = ctx.text[m.end() : m.end() + 2].lstrip()
    if after[:1] in {"度", "℃", "°"}:  # 38点5度 is a temperature
        return None
    hour = _num(m["h"])
    if hour is None:
        return None
    if hour > 24:  # "25点" is an impossible time when the text is a date phrase, noise in free text
        error = DateParseError("bad_time", text=m.group(0))
        return _Token(m.start(), m.end(), "error", error=error) if ctx.full else None
    if m["h"] == "一" and not (m["half"] or m["q"] or m["mi"] or m["zhong"]):
        prev = ctx.text[max(m.start() - 1, 0) : m.start()]
        if prev not in set("午上晨晚天"):  # "好一点", "有一点疼" are not 1 o'clock
            return None
    minute = 0
    if m["half"]:
        minute = 30
    elif m["q"]:
        minute = 15 if m["q"] == "一" else 45
    elif m["mi"]:
        parsed = _num(m["mi"])
        if parsed is None:
            return None
        minute = parsed
    if hour == 24 or minute > 59:
        return _Token(m.start(), m.end(), "error", error=DateParseError("bad_time", text=m.group(0)))
    return _Token(m.start(), m.end(), "time", hour=hour, minute=minute)


_Handler = Callable[[_Ctx, re.Match[str]], "_Token | None"]
_ZH_WEEK = r"(?:周|星期|礼拜)"
_ZH_PRE = r"(?P<pre>下下个?|下个?|这个?|本|上上个?|上个?)"
_ZH_WEEKDAY_CHARS = r"一二三四五六日天七八九十零〇\d"
_AMPM = r"(?P<ap>a\.?m\.?|p\.?m\.?)(?![a-z])"
_ZH_REL_WORDS = sorted((w for w in _REL_DAYS if not w.isascii()), key=len, reverse=True)
_EN_REL = r"\b(?:(?:the\s+)?day\s+after\s+tomorrow|tomorrow|tmrw?|today|tonight|yesterday)\b"
_EN_WEEKDAY = (
    r"\b(?:(?P<pre>this|next|coming|last|on)\s+)?"
    r"(?P<day>monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tues?|wed|thu(?:rs?)?|fri|sat|sun)\b"
)
_NOT_A_FRACTION = r"(?!\s*(?:[片粒支袋包瓶个次颗毫克]|mg|ml|g\b|tab|pill|cap|dose))"
_PATTERNS: list[tuple[re.Pattern[str], _Handler]] = [
    (re.compile(r"(?<![\d])(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})(?![\d])"), _h_iso),
    (
        re.compile(
            rf"(?:(?P<y>\d{{4}}|[零〇一二三四五六七八九]{{4}})\s*年\s*)?"
            rf"(?P<m>{NUM})\s*月份?\s*(?P<d>{NUM})\s*(?P<suf>[日号])?"
        ),
        _h_zh_date,
    ),
    (re.compile(rf"(?P<pre>下个?月|这个?月|本月|上个?月)\s*(?P<d>{NUM})\s*[日号]"), _h_month_rel_day),
    (re.compile(rf"(?<![\d月/\-.:年周期拜{ZH_NUM[1:-1]}])(?P<d>{NUM})\s*(?P<suf>号|日)"), _h_bare_day),
    (
        re.compile(
            rf"\b(?:the\s+)?(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<mon>{EN_MONTH})\.?"
            rf"(?:,?\s+(?P<y>\d{{4}}))?\b"
        ),
        _h_en_date,
    ),
    (
        re.compile(rf"\b(?P<mon>{EN_MONTH})\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(?P<y>\d{{4}}))?\b"),
        _h_en_date,
    ),
    (re.compile(r"\b(?:on\s+)?the\s+(?P<d>\d{1,2})(?P<suf>st|nd|rd|th)\b"), _h_en_ordinal),
    (re.compile(r"(?<![\d/.\-:])(?P<m>\d{1,2})/(?P<d>\d{1,2})(?![\d/])" + _NOT_A_FRACTION), _h_slash),
    (re.compile("|".join(re.escape(w) for w in _ZH_REL_WORDS)), _h_relative),
    (re.compile(_EN_REL), _h_relative),
    (re.compile(r"\bthis\s+(?P<part>morning|afternoon|evening)\b"), _h_this_part),
    (
        re.compile(
            rf"(?<![零〇一二两三四五六七八九十几每\d]){_ZH_PRE}?{_ZH_WEEK}(?P<x>[{_ZH_WEEKDAY_CHARS}])"
        ),
        _h_zh_weekday,
    ),
    (re.compile(rf"{_ZH_PRE}?(?:周末|礼拜末)"), _h_zh_weekend),
    (
        re.compile(
            rf"{_ZH_PRE}{_ZH_WEEK}(?![{_ZH_WEEKDAY_CHARS}末])|(?P<pre2>下个?|这个?|本)月(?![\d{ZH_NUM[1:-1]}])"
        ),
        _h_zh_vague,
    ),
    (re.compile(_EN_WEEKDAY), _h_en_weekday),
    (re.compile(r"\b(?:(?P<pre>this|next)\s+)?weekend\b"), _h_en_weekend),
    (re.compile(r"\b(?P<pre>this|next|last)\s+(?:week|month)\b"), _h_en_vague),
    (re.compile("|".join(sorted((re.escape(w) for w in _HALF_WORDS), key=len, reverse=True))), _h_half),
    (re.compile(r"(?<![\d.:])(?P<h>\d{1,2}):(?P<mi>\d{2})(?!\d)(?:\s*" + _AMPM + ")?"), _h_clock),
    (re.compile(r"(?<![\d.:])(?P<h>\d{1,2})(?::(?P<mi>\d{2}))?\s*" + _AMPM), _h_en_time),
    (
        re.compile(r"\bat\s+(?P<h>\d{1,2})(?::(?P<mi>\d{2}))?(?![\d:])(?!\s*(?:days?|度|°|kg|mg|%))"),
        _h_at_time,
    ),  # fmt: skip
    (re.compile(r"\b(?:noon|midday)\b"), _h_noon),
    (
        re.compile(
            rf"(?<![\d.])(?P<h>\d{{1,2}}|{ZH_NUM}{{1,3}})\s*[点时]"
            rf"(?:\s*(?P<half>半)|\s*(?P<q>[一三])刻|\s*(?P<mi>\d{{1,2}}|{ZH_NUM}{{1,3}})\s*分?|(?P<zhong>钟))?"
        ),
        _h_zh_clock,
    ),
]


def _scan(ctx: _Ctx) -> list[_Token]:
    found: list[_Token] = []
    for pattern, handler in _PATTERNS:
        for match in pattern.finditer(ctx.text):
            token = handler(ctx, match)
            if token is not None:
                found.append(token)
    # longest-leftmost wins where matches overlap
    found.sort(key=lambda t: (t.start, -(t.end - t.start)))
    chosen: list[_Token] = []
    for token in found:
        if not chosen or token.start >= chosen[-1].end:
            chosen.append(token)
    return chosen


# Text allowed between the parts of one phrase ("明天 上午", "tomorrow in the morning", "下周三的下午").
_GLUE = re.compile(r"^(?:\s|,|的|在|于|早|at|on|in|the|of|around|about|大约|大概|左右)*$")


def _phrases(ctx: _Ctx, tokens: list[_Token]) -> list[list[_Token]]:
    phrases: list[list[_Token]] = []
    for token in tokens:
        if phrases:
            last = phrases[-1]
            gap = ctx.text[last[-1].end : token.start]
            kinds = {t.kind for t in last}
            clash = token.kind in kinds and token.kind in {"date", "time", "half"}
            if _GLUE.match(gap) and not clash and "error" not in kinds | {token.kind}:
                last.append(token)
                continue
        phrases.append([token])
    return phrases


# ---- resolution ----


@dataclass
class _Resolved:
    spec: WhenSpec
    past: bool = False
    relative: bool = False
    past_label: str = ""


def _session_ends(times: SessionTimes) -> dict[HalfDay, dt.time]:
    return {"am": dt.time.fromisoformat(times.am_end), "pm": dt.time.fromisoformat(times.pm_end)}


def _resolve(ctx: _Ctx, phrase: list[_Token], now: dt.datetime, times: SessionTimes) -> _Resolved:
    date_tok = next((t for t in phrase if t.kind == "date"), None)
    half = next((t.half for t in phrase if t.kind == "half"), None)
    time_tok = next((t for t in phrase if t.kind == "time"), None)
    if half is None and date_tok is not None:
        half = date_tok.half
    if half is None and time_tok is not None and time_tok.half is not None:
        half = time_tok.half
    text = ctx.text[phrase[0].start : phrase[-1].end]

    clock: dt.time | None = None
    if time_tok is not None and time_tok.hour is not None:
        hour = time_tok.hour
        if time_tok.meridiem == "pm" and hour < 12:
            hour += 12
        elif time_tok.meridiem == "am" and hour == 12:
            hour = 0
        elif time_tok.meridiem is None and half == "pm" and hour < 12:
            hour += 12
        elif time_tok.meridiem is None and half is None and 1 <= hour <= 6:
            hour += 12  # "明天3点" means 15:00 at a clinic
        if half == "am" and hour >= 13:
            raise DateParseError("bad_time", text=text)
        clock = dt.time(hour, time_tok.minute)
        if half is None:
            half = "am" if hour < 12 else "pm"

    ends = _session_ends(times)
    local_now = now.time().replace(tzinfo=None)

    def still_open(day: dt.date) -> bool:
        if day != ctx.today:
            return day > ctx.today
        if clock is not None:
            return clock > local_now
        return local_now < ends[half or "pm"]

    day: dt.date | None = None
    relative = False
    if date_tok is not None:
        relative = date_tok.relative
        if date_tok.upcoming_weekday is not None:
            day = ctx.today + dt.timedelta(days=(date_tok.upcoming_weekday - ctx.today.weekday()) % 7)
            if not still_open(day):
                day += dt.timedelta(days=7)
        else:
            day = date_tok.date
    spec = WhenSpec(date=day, half_day=half, time=clock, text=text)
    if day is not None and not still_open(day):
        label = day.isoformat() + (f" {half}" if day == ctx.today and half else "")
        if clock is not None and day == ctx.today:
            label = f"{day.isoformat()} {clock.strftime('%H:%M')}"
        return _Resolved(spec, past=True, relative=relative, past_label=label)
    return _Resolved(spec, relative=relative)


def _prepare(text: str, now: dt.datetime, tz: str, full: bool) -> tuple[_Ctx, dt.datetime]:
    zone = ZoneInfo(tz)
    local = now.replace(tzinfo=zone) if now.tzinfo is None else now.astimezone(zone)
    ctx = _Ctx(text=_normalise(text if isinstance(text, str) else ""), today=local.date(), full=full)
    return ctx, local


def parse_when(
    text: str,
    now: dt.datetime,
    lang: str | None = None,
    *,
    tz: str = DEFAULT_TZ,
    session_times: SessionTimes | None = None,
) -> WhenSpec:
    """The day / half-day / time a date phrase names. Raises DateParseError: "bad_date" (nothing
    recognisable), "vague_date" ("下周"), "bad_month" / "bad_day" / "bad_weekday" / "bad_time"
    (impossible), "date_in_past". `lang` is accepted for symmetry; errors carry both languages."""
    ctx, local = _prepare(text, now, tz, full=True)
    times = session_times or SessionTimes()
    phrases, vague = _phrases_of(ctx)
    resolved = [(p, _resolve(ctx, p, local, times)) for p in phrases]
    for _, item in resolved:
        if item.past:
            raise DateParseError("date_in_past", date=item.past_label)
    if vague and not any(r.spec.date for _, r in resolved):
        token = vague[0][0]
        label = ctx.text[token.start : token.end]
        if token.date == dt.date.min:
            raise DateParseError("date_in_past", date=label)
        raise DateParseError("vague_date", text=label)
    if not resolved:
        raise DateParseError("bad_date", text=ctx.text or str(text))
    best = _combine(ctx, resolved, local, times)
    if best.past:
        raise DateParseError("date_in_past", date=best.past_label)
    return best.spec


def find_when(
    text: str,
    now: dt.datetime,
    lang: str | None = None,
    *,
    tz: str = DEFAULT_TZ,
    session_times: SessionTimes | None = None,
) -> WhenSpec | None:
    """The booking day / half-day mentioned in free text, or None if it names none. Impossible
    dates raise DateParseError; past relative words (昨天, 上周一, yesterday) are narrative and
    skipped; an explicit past date raises "date_in_past" only when no usable date is present.
    A bare clock time ("8点吃了药") or a vague week ("这周一直咳嗽") is not a booking date."""
    ctx, local = _prepare(text, now, tz, full=False)
    times = session_times or SessionTimes()
    phrases, _ = _phrases_of(ctx)
    phrases = [p for p in phrases if any(t.kind in {"date", "half"} for t in p)]
    resolved = [(p, _resolve(ctx, p, local, times)) for p in phrases]
    usable = [(p, r) for p, r in resolved if not r.past]
    if usable:
        best = _combine(ctx, usable, local, times)
        if not best.past:
            return best.spec
        return next((r.spec for _, r in usable if r.spec.date is not None), usable[0][1].spec)
    past_absolute = [r for _, r in resolved if r.past and not r.relative]
    if past_absolute:
        raise DateParseError("date_in_past", date=past_absolute[0].past_label)
    return None


def _phrases_of(ctx: _Ctx) -> tuple[list[list[_Token]], list[list[_Token]]]:
    """(phrases, vague phrases); raises the first impossible-date error found."""
    tokens = _scan(ctx)
    errors = [t.error for t in tokens if t.error is not None]
    if errors:
        raise errors[0]
    phrases = _phrases(ctx, tokens)
    vague = [p for p in phrases if any(t.kind == "vague" for t in p)]
    return [p for p in phrases if p not in vague], vague


def _combine(
    ctx: _Ctx, resolved: list[tuple[list[_Token], _Resolved]], now: dt.datetime, times: SessionTimes
) -> _Resolved:
    """The first dated phrase, completed by a separate half-day phrase ("明天皮肤科上午的号");
    without a dated phrase, the first half-day (or time) phrase."""
    dated = [(p, r) for p, r in resolved if r.spec.date is not None]
    undated = [(p, r) for p, r in resolved if r.spec.date is None and r.spec.half_day is not None]
    if not dated:
        return (undated or resolved)[0][1]
    phrase, best = dated[0]
    if best.spec.half_day is None and undated:
        best = _resolve(ctx, phrase + undated[0][0], now, times)
    return best
