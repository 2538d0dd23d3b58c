"""The search box: sites, goals and annotations the signed-in user can see."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Template

from app.core.errors import ClientError
from app.core.models import User
from app.core.pages import FormState
from app.core.resources import Resources
from app.domain.accounts.deps import USER_DEPENDENCIES
from app.domain.search.services import search


class SearchController(Controller):
    include_in_schema = False
    dependencies = USER_DEPENDENCIES

    @get("/search")
    async def search_page(self, user: NamedDependency[User], resources: NamedDependency[Resources],
                          q: FromQuery[str] = "") -> Template:
        hits, form, status = [], FormState(values={"q": q}), 200
        if q:
            try:
                async with resources.sessions() as session:
                    hits = await search(session, user.id, q)
            except ClientError as exc:
                form, status = FormState.failed(exc, {"q": q}), exc.status_code
        return Template("search.html", status_code=status,
                        context={"user": user, "q": q, "hits": hits, "form": form})
