"""Tiered care close to the patient (tools/data/tiered_care.yaml): which community or township health
centre, family doctor team or mobile clinic (巡回诊疗) serves a village or district, and when the next
mobile clinic visit is.

Which problems belong in primary care is not decided here: triage's `care_setting` says so
(tools/triage.py), and primary_care_options() turns it into places near the patient. Emergencies
never get primary-care options, only 120 / the emergency department.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from tools.booking.models import LocalizedText
from tools.localized_error import LocalizedError
from tools.triage_models import CareSetting

DATA_FILE = Path(__file__).resolve().parent / "data" / "tiered_care.yaml"
SEARCH_DAYS = 120  # how far ahead next_mobile_visit looks
NEAR_STOP_KM = 5.0  # a village without its own stop may use a stop this close
PRIMARY_KINDS = ("chc", "township", "village_clinic")
WEEKDAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]

AreaKind = Literal["village", "town", "street", "district"]
ServiceKind = Literal["hospital", "chc", "township", "village_clinic"]

ERROR_TEXT: dict[str, tuple[str, str]] = {
    "unknown_area": (
        "不认识“{detail}”这个村或街道。请说出村名、镇名或街道名，例如“岭下村”“东城街道”。",
        "'{detail}' is not a village or district we know. Please name your village, town or "
        "subdistrict, e.g. 'Lingxia Village' or 'Dongcheng'.",
    ),
    "no_mobile_clinic": (
        "{area}附近没有巡回医疗点。最近的基层医疗机构是{service}（约{km}公里）。",
        "There is no mobile clinic stop near {area}. The nearest primary care is {service} (about {km} km).",
    ),
    "unknown_kind": ("不认识的机构类型：{detail}", "Unknown kind of service: {detail}"),
    "unknown_care_setting": ("不认识的就医场所：{detail}", "Unknown care setting: {detail}"),
}


class TieredCareError(LocalizedError):
    """Bad input (an unknown village, ...) with a stable code and zh/en messages."""

    messages = ERROR_TEXT


# ------------------------------------------------------------------------------------ data models


class Area(BaseModel):
    id: str
    kind: AreaKind
    name: LocalizedText
    aliases: list[str] = Field(default_factory=list)
    parent: str | None = None
    x_km: float
    y_km: float


class Service(BaseModel):
    id: str
    kind: ServiceKind
    clinic_id: str | None = None  # the booking catalogue's clinic, when it can be booked
    area: str
    name: LocalizedText
    x_km: float
    y_km: float
    address: LocalizedText
    phone: str
    hours: LocalizedText
    offers: LocalizedText


class FamilyDoctorTeam(BaseModel):
    id: str
    service: str
    name: LocalizedText
    areas: list[str]
    phone: str


@dataclass(frozen=True)
class Rule:
    """The supported RRULE subset."""

    freq: Literal["WEEKLY", "MONTHLY"]
    interval: int
    byday: tuple[tuple[int, int], ...]  # (week of month or 0, weekday 0=Monday)


def parse_rrule(text: str) -> Rule:
    """ "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH" or "FREQ=MONTHLY;BYDAY=1SA" (first Saturday)."""
    parts = dict(p.split("=", 1) for p in text.strip().upper().split(";") if "=" in p)
    freq = parts.get("FREQ")
    if freq not in {"WEEKLY", "MONTHLY"}:
        raise ValueError(f"rrule {text!r}: FREQ must be WEEKLY or MONTHLY")
    interval = int(parts.get("INTERVAL", "1"))
    if interval < 1:
        raise ValueError(f"rrule {text!r}: INTERVAL must be >= 1")
    byday: list[tuple[int, int]] = []
    for item in filter(None, parts.get("BYDAY", "").split(",")):
        match = re.fullmatch(r"(-?[1-5])?(MO|TU|WE|TH|FR|SA|SU)", item)
        if not match:
            raise ValueError(f"rrule {text!r}: bad BYDAY item {item!r}")
        nth = int(match.group(1) or 0)
        if nth and freq == "WEEKLY":
            raise ValueError(f"rrule {text!r}: a week number only makes sense with FREQ=MONTHLY")
        if not nth and freq == "MONTHLY":
            raise ValueError(f"rrule {text!r}: MONTHLY needs a week number, e.g. 1SA")
        byday.append((nth, WEEKDAYS.index(match.group(2))))
    if not byday:
        raise ValueError(f"rrule {text!r}: BYDAY is required")
    return Rule(freq, interval, tuple(byday))  # type: ignore[arg-type]


def _hhmm(text: str) -> time:
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text.strip())
    if not match:
        raise ValueError(f"time {text!r} must be HH:MM")
    return time(int(match.group(1)), int(match.group(2)))


class Stop(BaseModel):
    area: str
    serves: list[str] = Field(default_factory=list)  # other areas this stop is meant for
    place: LocalizedText
    rrule: str
    dtstart: date | None = None  # first possible day; INTERVAL counts weeks from it
    start: str
    end: str
    exdates: list[date] = Field(default_factory=list)  # cancelled days (holidays)

    @model_validator(mode="after")
    def _check(self) -> Stop:
        rule = parse_rrule(self.rrule)
        if rule.interval > 1 and self.dtstart is None:
            raise ValueError(f"stop at {self.area}: INTERVAL > 1 needs dtstart")
        if _hhmm(self.end) <= _hhmm(self.start):
            raise ValueError(f"stop at {self.area}: end {self.end} is not after start {self.start}")
        return self

    @property
    def rule(self) -> Rule:
        return parse_rrule(self.rrule)

    def occurs_on(self, day: date) -> bool:
        if day in self.exdates or (self.dtstart and day < self.dtstart):
            return False
        rule = self.rule
        if rule.freq == "WEEKLY":
            if day.weekday() not in {wd for _, wd in rule.byday}:
                return False
            if rule.interval > 1 and self.dtstart is not None:
                anchor = self.dtstart - timedelta(days=self.dtstart.weekday())
                weeks = (day - anchor).days // 7
                return weeks % rule.interval == 0
            return True
        for nth, wd in rule.byday:
            if day.weekday() != wd:
                continue
            if nth > 0 and (day.day - 1) // 7 + 1 == nth:
                return True
            # -1FR: the last Friday (a week later is next month); -2FR: the one before it
            later, before = day + timedelta(days=7 * -nth), day + timedelta(days=7 * (-nth - 1))
            if nth < 0 and later.month != day.month and before.month == day.month:
                return True
        return False


class MobileClinicRoute(BaseModel):
    id: str
    service: str
    team: str | None = None  # a family doctor team id
    team_name: LocalizedText | None = None  # for teams that are not family doctor teams
    name: LocalizedText
    offers: LocalizedText
    stops: list[Stop] = Field(min_length=1)

    @model_validator(mode="after")
    def _team(self) -> MobileClinicRoute:
        if not self.team and not self.team_name:
            raise ValueError(f"mobile clinic {self.id}: needs `team` or `team_name`")
        return self


class SourceRef(BaseModel):
    doc_id: str
    section: str


class TieredCareData(BaseModel):
    version: str
    demo: bool
    timezone: str = "Asia/Shanghai"
    source: SourceRef
    areas: list[Area]
    services: list[Service]
    family_doctor_teams: list[FamilyDoctorTeam]
    mobile_clinics: list[MobileClinicRoute]

    @model_validator(mode="after")
    def _references(self) -> TieredCareData:
        areas = {a.id for a in self.areas}
        services = {s.id for s in self.services}
        teams = {t.id for t in self.family_doctor_teams}
        for group, ids in (("area", [a.id for a in self.areas]), ("service", [s.id for s in self.services])):
            dupes = {i for i in ids if ids.count(i) > 1}
            if dupes:
                raise ValueError(f"duplicate {group} ids: {sorted(dupes)}")
        for area in self.areas:
            if area.parent and area.parent not in areas:
                raise ValueError(f"area {area.id}: unknown parent {area.parent}")
        for service in self.services:
            if service.area not in areas:
                raise ValueError(f"service {service.id}: unknown area {service.area}")
        for team in self.family_doctor_teams:
            if team.service not in services:
                raise ValueError(f"team {team.id}: unknown service {team.service}")
            unknown = set(team.areas) - areas
            if unknown:
                raise ValueError(f"team {team.id}: unknown areas {sorted(unknown)}")
        for route in self.mobile_clinics:
            if route.service not in services:
                raise ValueError(f"mobile clinic {route.id}: unknown service {route.service}")
            if route.team and route.team not in teams:
                raise ValueError(f"mobile clinic {route.id}: unknown team {route.team}")
            for stop in route.stops:
                unknown = {stop.area, *stop.serves} - areas
                if unknown:
                    raise ValueError(f"mobile clinic {route.id}: unknown areas {sorted(unknown)}")
        ZoneInfo(self.timezone)
        return self

    def area(self, area_id: str) -> Area:
        return next(a for a in self.areas if a.id == area_id)

    def service(self, service_id: str) -> Service:
        return next(s for s in self.services if s.id == service_id)

    def team(self, team_id: str) -> FamilyDoctorTeam:
        return next(t for t in self.family_doctor_teams if t.id == team_id)


def load_tiered_care(path: Path | None = None) -> TieredCareData:
    """The data file, validated (unknown references, bad schedules -> ValueError naming the file)."""
    path = Path(path or DATA_FILE).resolve()
    return _load(path, path.stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _load(path: Path, _mtime_ns: int) -> TieredCareData:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    try:
        return TieredCareData.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"{path.name}: {exc}") from exc


# ---------------------------------------------------------------------------------------- areas


def _normalise(text: str) -> str:
    return re.sub(r"[\s'’\".,，。!！?？:：;；、()（）-]+", "", unicodedata.normalize("NFKC", text).lower())


def _latin_words(name: str) -> re.Pattern[str]:
    """A Latin name as whole words, spaces optional ("Shimen Village" in "I live in shimen village")."""
    words = re.findall(r"[a-z0-9]+", unicodedata.normalize("NFKC", name).lower())
    return re.compile(r"(?<![a-z0-9])" + r"[^a-z0-9]*".join(map(re.escape, words)) + r"(?![a-z0-9])")


def resolve_area(text: str, data: TieredCareData | None = None) -> Area:
    """The village/town/district named in `text` ("我住在岭下村", "石门村", "Shimen"): the longest known
    name inside the text wins, so "岭下镇" is the town and "岭下村" the village. Raises unknown_area."""
    data = data or load_tiered_care()
    norm = _normalise(text or "")
    lowered = unicodedata.normalize("NFKC", text or "").lower()
    best: tuple[int, Area] | None = None
    for area in data.areas:
        for name in [area.id, area.name.zh, area.name.en, *area.aliases]:
            key = _normalise(name)
            if len(key) < 2 or key not in norm:
                continue
            if key.isascii() and not _latin_words(name).search(lowered):
                continue  # "shimen" must not match inside "shimenxyz"
            if best is None or len(key) > best[0]:
                best = (len(key), area)
    if best is None:
        raise TieredCareError.of("unknown_area", detail=(text or "").strip()[:40] or "?")
    return best[1]


def _area_of(area: Area | str, data: TieredCareData) -> Area:
    return area if isinstance(area, Area) else resolve_area(area, data)


def _km(a: Area, x_km: float, y_km: float) -> float:
    return round(math.hypot(a.x_km - x_km, a.y_km - y_km), 1)


# ------------------------------------------------------------------------------------- services


class ServiceOption(BaseModel):
    service_id: str
    kind: ServiceKind
    clinic_id: str | None
    name: LocalizedText
    distance_km: float
    address: LocalizedText
    phone: str
    hours: LocalizedText
    offers: LocalizedText
    family_doctor_teams: list[FamilyDoctorTeam] = Field(default_factory=list)  # covering this area


def nearest_services(
    area: Area | str,
    kind: str | None = None,
    *,
    limit: int = 5,
    data: TieredCareData | None = None,
) -> list[ServiceOption]:
    """Services nearest to the area, closest first. kind: hospital | chc | township | village_clinic,
    or "primary" for the three primary-care kinds; None for all."""
    data = data or load_tiered_care()
    place = _area_of(area, data)
    if kind is None:
        kinds: set[str] = {"hospital", *PRIMARY_KINDS}
    elif kind == "primary":
        kinds = set(PRIMARY_KINDS)
    elif kind in {"hospital", *PRIMARY_KINDS}:
        kinds = {kind}
    else:
        raise TieredCareError.of("unknown_kind", detail=str(kind)[:40])
    options = []
    for service in data.services:
        if service.kind not in kinds:
            continue
        teams = [t for t in data.family_doctor_teams if t.service == service.id and place.id in t.areas]
        options.append(
            ServiceOption(
                service_id=service.id,
                kind=service.kind,
                clinic_id=service.clinic_id,
                name=service.name,
                distance_km=_km(place, service.x_km, service.y_km),
                address=service.address,
                phone=service.phone,
                hours=service.hours,
                offers=service.offers,
                family_doctor_teams=teams,
            )
        )
    options.sort(key=lambda o: (o.distance_km, o.service_id))
    return options[:limit]


def family_doctor_teams(area: Area | str, data: TieredCareData | None = None) -> list[FamilyDoctorTeam]:
    """The family doctor teams that cover this area (where the patient can sign a contract)."""
    data = data or load_tiered_care()
    place = _area_of(area, data)
    ids = {place.id, place.parent} - {None}
    direct = [t for t in data.family_doctor_teams if place.id in t.areas]
    return direct or [t for t in data.family_doctor_teams if ids & set(t.areas)]


# -------------------------------------------------------------------------------- mobile clinics


class MobileVisit(BaseModel):
    route_id: str
    route_name: LocalizedText
    team: LocalizedText
    team_phone: str | None
    area_id: str  # where the van stops
    area_name: LocalizedText
    place: LocalizedText
    start: datetime
    end: datetime
    in_progress: bool  # `now` is during this visit
    distance_km: float  # from the patient's area to the stop's area (0 when it is their own)
    offers: LocalizedText

    @property
    def services(self) -> LocalizedText:
        """What the visit offers (same as `offers`; the name the chat desk reads)."""
        return self.offers

    def text(self, lang: str) -> str:
        """下一次巡回医疗：11月24日（周二）09:00-11:30，岭下村村委会，……"""
        day_zh = f"{self.start.month}月{self.start.day}日（周{'一二三四五六日'[self.start.weekday()]}）"
        day_en = self.start.strftime("%a %d %b")
        hours = f"{self.start:%H:%M}-{self.end:%H:%M}"
        if lang == "zh":
            lead = "巡回医疗正在进行" if self.in_progress else "下一次巡回医疗"
            return (
                f"{lead}：{day_zh} {hours}，地点{self.place.zh}，{self.team.zh}。可以做：{self.offers.zh}。"
            )
        lead = "The mobile clinic is there now" if self.in_progress else "Next mobile clinic visit"
        where = f"at {self.place.en}, with {self.team.en}"
        return f"{lead}: {day_en}, {hours}, {where}. They offer: {self.offers.en}."


def _localise(now: datetime, tz: ZoneInfo) -> datetime:
    return now.replace(tzinfo=tz) if now.tzinfo is None else now.astimezone(tz)


def upcoming_mobile_visits(
    area_text: Area | str, now: datetime, *, count: int = 3, data: TieredCareData | None = None
) -> list[MobileVisit]:
    """The next `count` mobile clinic visits for the patient's area (a visit still running at `now`
    counts; one that ended earlier today does not). Naive `now` is read in the data's time zone.

    Stops meant for the area come first; a village with none uses stops within NEAR_STOP_KM.
    Raises unknown_area, or no_mobile_clinic (naming the nearest primary care instead)."""
    data = data or load_tiered_care()
    place = _area_of(area_text, data)
    tz = ZoneInfo(data.timezone)
    now = _localise(now, tz)
    candidates: list[tuple[MobileClinicRoute, Stop]] = [
        (route, stop)
        for route in data.mobile_clinics
        for stop in route.stops
        if place.id == stop.area or place.id in stop.serves
    ]
    if not candidates:
        candidates = [
            (route, stop)
            for route in data.mobile_clinics
            for stop in route.stops
            if _km(place, data.area(stop.area).x_km, data.area(stop.area).y_km) <= NEAR_STOP_KM
        ]
    if not candidates:
        nearest = nearest_services(place, "primary", limit=1, data=data)[0]
        raise TieredCareError.of(
            "no_mobile_clinic",
            area=place.name.zh,
            area_en=place.name.en,
            service=nearest.name.zh,
            service_en=nearest.name.en,
            km=str(nearest.distance_km),
        )
    visits: list[MobileVisit] = []
    for offset in range(SEARCH_DAYS):
        day = now.date() + timedelta(days=offset)
        for route, stop in candidates:
            if not stop.occurs_on(day):
                continue
            start = datetime.combine(day, _hhmm(stop.start), tzinfo=tz)
            end = datetime.combine(day, _hhmm(stop.end), tzinfo=tz)
            if end <= now:
                continue  # today's visit is already over
            visits.append(_visit(data, place, route, stop, start, end, now))
        if len(visits) >= count:
            break
    visits.sort(key=lambda v: (v.start, v.distance_km, v.route_id))
    return visits[:count]


def _visit(
    data: TieredCareData,
    place: Area,
    route: MobileClinicRoute,
    stop: Stop,
    start: datetime,
    end: datetime,
    now: datetime,
) -> MobileVisit:
    team = data.team(route.team) if route.team else None
    stop_area = data.area(stop.area)
    return MobileVisit(
        route_id=route.id,
        route_name=route.name,
        team=team.name if team else route.team_name,  # type: ignore[arg-type]
        team_phone=team.phone if team else None,
        area_id=stop_area.id,
        area_name=stop_area.name,
        place=stop.place,
        start=start,
        end=end,
        in_progress=start <= now < end,
        distance_km=_km(place, stop_area.x_km, stop_area.y_km),
        offers=route.offers,
    )


def next_mobile_visit(
    area_text: Area | str, now: datetime, data: TieredCareData | None = None
) -> MobileVisit:
    """The next mobile clinic visit for the patient's village ("下一次巡回医疗车什么时候到岭下村？")."""
    visits = upcoming_mobile_visits(area_text, now, count=1, data=data)
    if not visits:  # every candidate stop cancelled for SEARCH_DAYS
        data = data or load_tiered_care()
        place = _area_of(area_text, data)
        nearest = nearest_services(place, "primary", limit=1, data=data)[0]
        raise TieredCareError.of(
            "no_mobile_clinic",
            area=place.name.zh,
            area_en=place.name.en,
            service=nearest.name.zh,
            service_en=nearest.name.en,
            km=str(nearest.distance_km),
        )
    return visits[0]


# ---------------------------------------------------------------------- from triage to a place


class PrimaryCareOptions(BaseModel):
    care_setting: CareSetting
    area: Area
    services: list[ServiceOption]  # nearest first
    family_doctor_teams: list[FamilyDoctorTeam]
    note: LocalizedText
    citations: list[SourceRef]


NOTES: dict[CareSetting, tuple[str, str]] = {
    CareSetting.ambulance_ed: (
        "这是急症：现在就拨打120，不要等社区门诊或巡回医疗车。",
        "This is an emergency: call 120 now; do not wait for a community clinic or the mobile clinic.",
    ),
    CareSetting.emergency_department: (
        "请立即去最近医院的急诊科；情况加重或无法自行前往时拨打120。不要等社区门诊或巡回医疗车。",
        "Go to the nearest hospital emergency department now; call 120 if it gets worse or you cannot get "
        "there safely. Do not wait for a community clinic or the mobile clinic.",
    ),
    CareSetting.hospital_clinic: (
        "需要医院门诊。可以直接挂医院的号，也可以请家庭医生开转诊（很多地方为转诊病人预留号源）。",
        "This needs a hospital clinic. Book directly, or ask your family doctor for a referral "
        "(many places keep appointments for referred patients).",
    ),
    CareSetting.community: (
        "社区卫生服务中心、乡镇卫生院或你的家庭医生可以处理；巡回医疗车来时也可以看。如果加重，请去医院。",
        "A community or township health centre or your family doctor can handle this; so can the mobile "
        "clinic when it visits. If it gets worse, go to a hospital.",
    ),
    CareSetting.home: (
        "可以先在家观察护理；如果几天不见好或加重，就近找社区医生或家庭医生。",
        "You can look after this at home for now; if it is not better in a few days or gets worse, see "
        "your community or family doctor.",
    ),
}


def primary_care_options(
    triage_care_setting: CareSetting | str, area: Area | str, data: TieredCareData | None = None
) -> PrimaryCareOptions:
    """Places near the patient that fit triage's care setting: primary care (and family doctor teams)
    for community/home, the hospital (plus the family doctor, for referral) for hospital_clinic, and
    NO primary-care options for emergencies — only the 120 / emergency department note."""
    data = data or load_tiered_care()
    try:
        setting = CareSetting(triage_care_setting)
    except ValueError as exc:
        raise TieredCareError.of("unknown_care_setting", detail=str(triage_care_setting)[:40]) from exc
    place = _area_of(area, data)
    zh, en = NOTES[setting]
    if setting in {CareSetting.ambulance_ed, CareSetting.emergency_department}:
        services: list[ServiceOption] = []
        teams: list[FamilyDoctorTeam] = []
        cite = [SourceRef(doc_id="tiered-care", section="emergency-department")]
    elif setting == CareSetting.hospital_clinic:
        services = nearest_services(place, "hospital", limit=2, data=data)
        teams = family_doctor_teams(place, data)
        cite = [SourceRef(doc_id="tiered-care", section="referral")]
    else:
        services = nearest_services(place, "primary", limit=3, data=data)
        teams = family_doctor_teams(place, data)
        cite = [SourceRef(doc_id="tiered-care", section="community"), data.source]
    return PrimaryCareOptions(
        care_setting=setting,
        area=place,
        services=services,
        family_doctor_teams=teams,
        note=LocalizedText(zh=zh, en=en),
        citations=cite,
    )
