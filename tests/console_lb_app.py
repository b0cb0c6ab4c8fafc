"""What the API server mounts, for the load-balancer test: the web view at /meccano and the console API at
/meccano-console (meccano.web.airflow_plugin), served by uvicorn: ``uvicorn --factory tests.console_lb_app:app``."""

from __future__ import annotations

from fastapi import FastAPI


def app() -> FastAPI:
    from meccano.web.app import create_app
    from meccano.web.console import create_console_app

    outer = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    outer.mount("/meccano-console", create_console_app())
    outer.mount("/meccano", create_app())
    return outer
