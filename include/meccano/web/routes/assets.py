"""A plugin's documentation and the other files of its ``assets/`` folder."""

from __future__ import annotations

import mimetypes

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from meccano.web.access import User, require_dag
from meccano.web.files import plugin_folder, read_asset

NOT_FOUND = "not found"
DOCS_CSP = "sandbox; default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self'; frame-ancestors 'self'"

router = APIRouter()


def asset_response(plugin: str, path: str, user: object) -> Response:
    require_dag(user, plugin.partition(":")[0])  # the folder name:version; its DAG id is the name
    folder = plugin_folder(plugin)
    data = read_asset(folder, path) if folder is not None else None
    if data is None:
        raise HTTPException(404, NOT_FOUND)
    media = mimetypes.guess_type(path.rsplit("/", 1)[-1])[0] or "application/octet-stream"
    return Response(data, media_type=media, headers={"Content-Security-Policy": DOCS_CSP,
                                                     "X-Content-Type-Options": "nosniff"})


@router.get("/plugins/{plugin}/docs", summary="The plugin's assets/index.html")
def docs(plugin: str, user: User) -> Response:
    return asset_response(plugin, "index.html", user)


@router.get("/plugins/{plugin}/assets/{path:path}", summary="A file of assets/")
def asset(plugin: str, path: str, user: User) -> Response:
    return asset_response(plugin, path, user)
