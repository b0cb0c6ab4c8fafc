"""``GET /plugins``: the listing (JSON)."""

from __future__ import annotations

from fastapi import APIRouter

from meccano.web.access import ListingUser, visible_rows
from meccano.web.context import Context, Roots
from meccano.web.listing import PluginRow, build_listing

router = APIRouter()


@router.get("/plugins", response_model=list[PluginRow],
            summary="Every plugin whose DAG the caller may read, with its plugin.json fields, validity, runs and links")
def plugins(ctx: Context, roots: Roots, user: ListingUser) -> list[PluginRow]:
    return visible_rows(build_listing(ctx.store, roots.app, roots.airflow, timezone=ctx.settings.timezone), user)
