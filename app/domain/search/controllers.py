"""The search box: sites, goals and annotations the signed-in user can see."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.params import FromQuery
from litestar.response import Redirect, Template

from app.core.errors import ClientError
from app.core.resources import Resources
from app.domain.accounts.deps import current_user
from app.domain.search.services import search


class SearchController(Controller):
    include_in_schema = False

    @get("/search")
    async def search_page(self, request: Request[Any, Any, Any], q: FromQuery[str] = "") -> Template | Redirect:
        user = await current_user(request)
        if user is None:
            return Redirect("/login?next=/search")
        resources: Resources = request.app.state.resources
        hits, error, status = [], None, 200
        if q:
            try:
                async with resources.sessions() as session:
                    hits = await search(session, user.id, q)
            except ClientError as exc:
                error, status = exc.detail, 400
        return Template("search.html", status_code=status,
                        context={"user": user, "q": q, "hits": hits, "error": error})
