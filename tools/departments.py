"""Department catalogue (data file) and the routing of ranked candidates to real departments."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, Field

from tools.patient import Patient

DEFAULT_CATALOGUE = Path(__file__).resolve().parent / "data" / "departments.yaml"

# A general-hospital department and its children's-hospital counterpart.
PEDIATRIC_EQUIVALENT: dict[str, str] = {
    "emergency": "ped_emergency",
    "fever_clinic": "ped_fever",
    "general_practice": "ped_general",
    "pediatrics": "ped_general",
    "respiratory": "ped_respiratory",
    "gastroenterology": "ped_gastro",
    "neurology": "ped_neurology",
    "cardiology": "ped_cardiology",
    "nephrology": "ped_nephrology",
    "endocrinology": "ped_endocrine",
    "hematology": "ped_hematology",
    "infectious": "ped_infectious",
    "general_surgery": "ped_surgery",
    "anorectal": "ped_surgery",
    "thoracic_surgery": "ped_surgery",
    "neurosurgery": "ped_surgery",
    "burns": "ped_surgery",
    "orthopedics": "ped_orthopedics",
    "urology": "ped_urology",
    "andrology": "ped_urology",
    "dermatology": "ped_dermatology",
    "allergy": "ped_dermatology",
    "ent": "ped_ent",
    "ophthalmology": "ped_ophthalmology",
    "stomatology": "ped_dental",
    "psychiatry": "ped_psychology",
    "geriatrics": "ped_general",
}
FEMALE_ONLY = {"gynecology", "obstetrics"}
MALE_ONLY = {"andrology"}
ADULT_ONLY = {"geriatrics", "andrology"}


class Department(BaseModel):
    id: str
    hospital: str
    zh: str
    en: str
    aliases: list[str] = Field(default_factory=list)  # what people call it: 心内科, skin doctor, ENT

    def name(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


class Catalogue(BaseModel):
    version: str
    departments: dict[str, Department]

    @property
    def has_children_hospital(self) -> bool:
        return any(d.hospital == "children" for d in self.departments.values())

    def route(self, dept_id: str, patient: Patient) -> str | None:
        """The department this patient should actually go to, or None if unsuitable."""
        if patient.sex == "male" and dept_id in FEMALE_ONLY:
            return None
        if patient.sex == "female" and dept_id in MALE_ONLY:
            return None
        if patient.is_child:
            if patient.band == "newborn" and dept_id in {"pediatrics", "ped_general"}:
                dept_id = "neonatology"
            if self.has_children_hospital and dept_id in PEDIATRIC_EQUIVALENT:
                dept_id = PEDIATRIC_EQUIVALENT[dept_id]
            elif dept_id in ADULT_ONLY:
                return None
            if not self.has_children_hospital and dept_id.startswith("ped_"):
                dept_id = "emergency" if dept_id == "ped_emergency" else "pediatrics"
        elif dept_id.startswith("ped_") or dept_id in {"neonatology", "child_health"}:
            return None
        if dept_id not in self.departments:
            return None
        return dept_id


def load_catalogue(path: Path | None = None) -> Catalogue:
    return _load(Path(path or DEFAULT_CATALOGUE).resolve())


@lru_cache(maxsize=8)
def _load(path: Path) -> Catalogue:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    items = data.get("departments") or []
    if not items:
        raise ValueError(f"department catalogue {path} lists no departments")
    departments = {d["id"]: Department(**d) for d in items}
    return Catalogue(version=str(data.get("version", "0")), departments=departments)
