"""Sign in and sign out."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec
from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery
from litestar.response import Redirect, Template

from app.core.resources import Resources
from app.domain.accounts.deps import current_user
from app.domain.accounts.services import authenticate


class LoginForm(msgspec.Struct):
    email: str = ""
    password: str = ""
    next: str = "/"


def _safe_next(target: str) -> str:
    """Only same-site paths, so the login form cannot be used to redirect elsewhere."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


class AccountController(Controller):
    include_in_schema = False

    @get("/login")
    async def login_page(self, request: Request[Any, Any, Any], next: FromQuery[str] = "/") -> Template | Redirect:
        if await current_user(request) is not None:
            return Redirect(_safe_next(next))
        return Template("login.html", context={"next": _safe_next(next), "error": None, "email": ""})

    @post("/login", status_code=303)
    async def login(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Template | Redirect:
        resources: Resources = request.app.state.resources
        async with resources.sessions.begin() as session:
            user = await authenticate(session, data.email, data.password)
        if user is None:
            return Template("login.html", status_code=400, context={
                "next": _safe_next(data.next), "error": "Wrong e-mail or password.", "email": data.email})
        request.clear_session()
        request.set_session({"user_id": user.id})
        return Redirect(_safe_next(data.next), status_code=303)

    @post("/logout", status_code=303)
    async def logout(self, request: Request[Any, Any, Any]) -> Redirect:
        request.clear_session()
        return Redirect("/login", status_code=303)
