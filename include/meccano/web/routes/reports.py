"""The report store: a plugin's kept reports and their files."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from meccano.reports.store import PUBLISHED_SUFFIXES
from meccano.web.access import User, require_dag
from meccano.web.context import Context, Roots

NOT_FOUND = "not found"

router = APIRouter()


@router.get("/reports/{name}", summary="The kept reports of a plugin, newest first")
def report_history(name: str, ctx: Context, roots: Roots, user: User) -> list[dict[str, Any]]:
    require_dag(user, name)  # a report plugin's DAG id is its name
    return [{**e.as_dict(), "links": {f: f"{roots.app}/reports/{name}/{e.stamp}/{f}" for f in e.files}}
            for e in ctx.store.history_of(name)]


@router.get("/reports/{name}/{stamp}/{filename}", summary="A file of a report (its chart, data.csv, ...)")
def report_file(name: str, stamp: str, filename: str, ctx: Context, user: User) -> Response:
    require_dag(user, name)
    immutable = stamp != "latest"
    if not immutable:
        entry = ctx.store.latest(name)
        if entry is None:
            raise HTTPException(404, NOT_FOUND)
        stamp = entry.stamp
    try:
        data = ctx.store.read(name, stamp, filename)
    except FileNotFoundError:
        raise HTTPException(404, NOT_FOUND) from None
    media = PUBLISHED_SUFFIXES["." + filename.rsplit(".", 1)[-1]]
    cache = "private, max-age=86400, immutable" if immutable else "no-cache"
    return Response(data, media_type=media, headers={"Cache-Control": cache, "X-Content-Type-Options": "nosniff"})
