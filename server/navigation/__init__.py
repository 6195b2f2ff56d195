"""In-hospital navigation on the server: REST /api/navigation/... (routes.py) over tools/navigation.py
and tools/floorplan_svg.py. The runtime only knows where the maps are and which one is the default;
maps are loaded (and validated) on first use and cached by tools.navigation.load_map."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.navigation import MAPS_DIR, MapDataError, NavigationError, load_map

if TYPE_CHECKING:
    from collections.abc import Callable

    from assistant.settings import Settings

log = logging.getLogger(__name__)

FALLBACK_MAP_ID = "demo-general-hospital"


class NavigationRuntime:
    def __init__(
        self,
        settings: Settings | None = None,
        notify: Callable[[str, str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.maps_dir: Path = Path(settings.maps_dir) if settings is not None else MAPS_DIR
        wanted = settings.default_clinic_id if settings is not None else FALLBACK_MAP_ID
        # The default clinic may have no map (a community centre): fall back to the demo hospital.
        self.default_map_id = wanted if (self.maps_dir / f"{wanted}.yaml").is_file() else FALLBACK_MAP_ID
        self.notify = notify  # unused: navigation pushes nothing; kept for the runtime contract

    def map_ids(self) -> list[str]:
        return sorted(p.stem for p in self.maps_dir.glob("*.yaml"))

    async def start(self) -> None:
        try:  # load and validate the default map now, so a broken file shows up in the log at start
            load_map(self.default_map_id, self.maps_dir)
        except (NavigationError, MapDataError) as exc:
            log.error("navigation map %s is not usable: %s", self.default_map_id, exc)

    async def stop(self) -> None:
        return None
