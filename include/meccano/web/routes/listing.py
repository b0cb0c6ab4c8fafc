"""``GET /plugins``: the listing (JSON)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from meccano.web.access import listing_access
from meccano.web.context import Context, Roots
from meccano.web.listing import PluginRow, build_listing

router = APIRouter()


@router.get("/plugins", response_model=list[PluginRow], dependencies=[Depends(listing_access)],
            summary="Every plugin with its plugin.json fields, validity, runs and links")
def plugins(ctx: Context, roots: Roots) -> list[PluginRow]:
    return build_listing(ctx.store, roots.app, roots.airflow, timezone=ctx.settings.timezone)
