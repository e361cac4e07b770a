"""DirectRoute: a shortcut answers what it is sure about, FastAPI's handler the rest."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from prequal_api import routes
from prequal_api.direct_route import DirectRoute, has_shortcut, shortcut

pytestmark = pytest.mark.unit


class Item(BaseModel):
    count: int


async def _only_small(request: Request, _route: APIRoute) -> Response | None:
    body = await request.body()
    return Response(b"direct", media_type="text/plain") if len(body) < 12 else None


def _app() -> FastAPI:
    router = APIRouter(route_class=DirectRoute)

    @router.post("/items")
    @shortcut(_only_small)
    async def create(item: Item) -> dict[str, int]:
        return {"general": item.count}

    @router.post("/plain")
    async def plain(item: Item) -> dict[str, int]:
        return {"plain": item.count}

    app = FastAPI()
    app.include_router(router)
    return app


def _post(path: str, **kwargs: Any) -> httpx.Response:
    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.post(path, **kwargs)

    return asyncio.run(post())


def test_the_shortcut_answers_what_it_takes() -> None:
    assert _post("/items", content=b'{"count":1}').text == "direct"


def test_fastapi_answers_what_the_shortcut_leaves_reading_the_same_body() -> None:
    taken = _post("/items", json={"count": 12345})
    refused = _post("/items", json={"count": "many"})
    assert taken.json() == {"general": 12345}
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "count"]


def test_a_route_without_a_shortcut_is_fastapis() -> None:
    assert _post("/plain", json={"count": 2}).json() == {"plain": 2}


def test_the_hot_routes_have_shortcuts() -> None:
    assert has_shortcut(routes.submit_application)
    assert has_shortcut(routes.application_status)
    assert not has_shortcut(routes.erase_application)
