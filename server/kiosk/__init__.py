"""The clinic-lobby kiosk: speech in/out, the visit-plan QR code and the page config
(server/static/kiosk.html drives triage -> booking -> route -> next steps through the other APIs).

    app.state.kiosk = KioskRuntime(settings); app.include_router(router)
"""

from server.kiosk.routes import router
from server.kiosk.runtime import KioskRuntime

__all__ = ["KioskRuntime", "router"]
