"""``GET /``: the HTML page (an Airflow login; shown inside the Airflow UI)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from meccano.scripts.isolation import isolation_notice
from meccano.web.access import User, visible_rows
from meccano.web.context import Context, Roots
from meccano.web.listing import build_listing
from meccano.web.page import render_page
from meccano.web.setup import missing_now

# Shown inside the Airflow UI (an iframe on the same origin): no other framing, no
# scripts, nothing loaded from elsewhere.
PAGE_CSP = ("default-src 'self'; style-src 'unsafe-inline'; img-src 'self'; frame-src 'self'; "
            "script-src 'none'; frame-ancestors 'self'")

router = APIRouter()


def _notices(ctx: Context) -> list[str]:
    notice = isolation_notice(ctx.settings)
    return [notice] if notice else []


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def page(ctx: Context, roots: Roots, user: User) -> HTMLResponse:
    zone = ctx.settings.timezone
    rows = visible_rows(build_listing(ctx.store, roots.app, roots.airflow, timezone=zone), user)
    html = render_page(rows, f"{roots.app}/plugins", zone, missing=missing_now(ctx.settings), notices=_notices(ctx))
    return HTMLResponse(html, headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store",
                                       "X-Frame-Options": "SAMEORIGIN"})
