"""What the API server mounts, for the load-balancer test: the web view at /meccano and the console API at
/meccano-console (meccano.web.airflow_plugin), served by uvicorn:
``uvicorn --factory tests.support.console_lb_app:app``.

Test-only: every response also says what the app saw, ``X-Seen-Client`` (the client address after uvicorn's
proxy-headers handling, what the allow-list checks) and ``X-Seen-Forwarded-For`` (the header as it arrived), so
the test can tell what nginx forwarded and what uvicorn made of it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI

Message = MutableMapping[str, Any]
Asgi = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                Awaitable[None]]


def app() -> Asgi:
    from meccano.web.app import create_app
    from meccano.web.console import create_console_app

    outer = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    outer.mount("/meccano-console", create_console_app())
    outer.mount("/meccano", create_app())
    return _shows_what_it_saw(outer)


def _shows_what_it_saw(inner: Asgi) -> Asgi:
    async def wrapped(scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Message]],
                      send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await inner(scope, receive, send)
            return
        client = (scope.get("client") or ("",))[0].encode()
        forwarded = b", ".join(value for name, value in scope["headers"] if name == b"x-forwarded-for")

        async def send_seen(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-seen-client", client),
                                                  (b"x-seen-forwarded-for", forwarded)]}
            await send(message)

        await inner(scope, receive, send_seen)

    return wrapped
