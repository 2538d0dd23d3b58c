"""Sign in, sign out, registration, password reset and account settings (password, API keys)."""

from __future__ import annotations

import logging
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

import httpx
import msgspec
from litestar import Controller, Request, get, post
from litestar.background_tasks import BackgroundTask
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect, Template

from app.core.errors import AppError, ClientError, TooManyRequests
from app.core.integration_contracts import PasswordResetMail
from app.core.models import User
from app.core.pages import FormState, flash
from app.core.resources import Resources
from app.domain.accounts.deps import USER_DEPENDENCIES, client_address
from app.domain.accounts.reset import INVALID_LINK, PasswordResetThrottle, reset_token, set_password, user_for_token
from app.domain.accounts.services import (
    authenticate,
    change_password,
    end_sessions,
    get_user_by_email,
    normalize_email,
    pending_invitation,
    register_user,
)
from app.domain.accounts.session import rotate_session, start_session
from app.domain.accounts.throttle import LoginThrottle, RegistrationThrottle
from app.domain.apikeys.services import create_api_key, list_api_keys, revoke_api_key
from app.realtime.publish import WebSocketService

logger = logging.getLogger("beacon.accounts")

Form = Body(media_type=RequestEncodingType.URL_ENCODED)
Res = NamedDependency[Resources]
SignedIn = NamedDependency[User | None]
SignedInUser = NamedDependency[User]


class LoginForm(msgspec.Struct):
    email: str = ""
    password: str = ""
    next: str = "/"


class RegisterForm(msgspec.Struct):
    email: str = ""
    password: str = ""
    password_again: str = ""
    invitation: FromQuery[str] = ""


class PasswordForm(msgspec.Struct):
    current_password: str = ""
    new_password: str = ""
    new_password_again: str = ""


class ForgotForm(msgspec.Struct):
    email: str = ""


class ResetForm(msgspec.Struct):
    token: str = ""
    password: str = ""
    password_again: str = ""


class ApiKeyForm(msgspec.Struct):
    name: str = ""
    scopes: list[str] | str = msgspec.field(default_factory=list)


async def _queue_reset_mail(resources: Resources, user_id: int, mail: PasswordResetMail) -> None:
    """Ask the integrations service to put the reset email in its outbox; a failure is logged, never shown
    (the answer must not differ for existing accounts)."""
    try:
        response = await resources.services.request("integrations", "POST", "/mail/password-reset",
                                                     json=msgspec.to_builtins(mail))
        response.raise_for_status()
    except (AppError, httpx.HTTPError) as exc:
        logger.error("password reset email not queued", extra={"user_id": user_id, "error": str(exc)})


def _safe_next(target: str) -> str:
    """Only same-site paths, so the login form cannot be used to redirect elsewhere."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


class AccountController(Controller):
    """Handlers take the resources and the (signed-in) user from the providers of ``USER_DEPENDENCIES``."""

    include_in_schema = False
    dependencies = USER_DEPENDENCIES

    @get("/login")
    async def login_page(self, signed_in: SignedIn, next: FromQuery[str] = "/") -> Template | Redirect:
        if signed_in is not None:
            return Redirect(_safe_next(next))
        return Template("login.html", context={"next": _safe_next(next), "form": FormState()})

    @post("/login", status_code=303)
    async def login(self, request: Request[Any, Any, Any], resources: Res,
                    data: Annotated[LoginForm, Form]) -> Template | Redirect:
        values = {"email": data.email}
        throttle = LoginThrottle(resources.redis, resources.keys, resources.settings.accounts)
        verdict = await throttle.attempt(data.email, client_address(request))
        if not verdict.allowed:
            error = TooManyRequests(f"email: too many sign-in attempts; try again in {verdict.retry_after} s")
            return Template("login.html", status_code=error.status_code,
                            headers={"Retry-After": str(verdict.retry_after)},
                            context={"next": _safe_next(data.next), "form": FormState.failed(error, values)})
        async with resources.sessions.begin() as session:
            user = await authenticate(session, data.email, data.password)
        if user is None:
            return Template("login.html", status_code=400, context={
                "next": _safe_next(data.next),
                "form": FormState(values=values, summary=[(None, "Wrong e-mail or password.")])})
        await throttle.succeeded(data.email, client_address(request))
        start_session(request, user.id, user.session_epoch)
        return Redirect(_safe_next(data.next), status_code=303)

    @post("/logout", status_code=303)
    async def logout(self, request: Request[Any, Any, Any]) -> Redirect:
        request.clear_session()
        rotate_session(request)
        flash(request, "You are signed out.")
        return Redirect("/login", status_code=303)

    @get("/password/forgot")
    async def forgot_page(self) -> Template:
        return Template("password_forgot.html", context={"form": FormState(), "sent": None})

    @post("/password/forgot", status_code=200)
    async def forgot(self, request: Request[Any, Any, Any], resources: Res,
                     data: Annotated[ForgotForm, Form]) -> Template:
        """Mail a reset link if an account has this address; the answer is the same either way."""
        try:
            if not data.email.strip():
                raise ClientError("email: enter the e-mail address of your account")
            email = normalize_email(data.email)
        except ClientError as exc:
            return Template("password_forgot.html", status_code=400,
                            context={"form": FormState.failed(exc, {"email": data.email[:254]}), "sent": None})
        accounts = resources.settings.accounts
        verdict = await PasswordResetThrottle(resources.redis, resources.keys, accounts).attempt(
            email, client_address(request))
        if not verdict.allowed:
            limited = TooManyRequests(f"email: too many reset requests; try again in {verdict.retry_after} s")
            return Template("password_forgot.html", status_code=limited.status_code,
                            headers={"Retry-After": str(verdict.retry_after)},
                            context={"form": FormState.failed(limited, {"email": email}), "sent": None})
        async with resources.sessions() as session:
            user = await get_user_by_email(session, email)
        background = None
        if user is not None:
            token = reset_token(resources.settings.security.secret_key, user, accounts.password_reset_ttl)
            link = f"{resources.settings.server.base_url}/password/reset?{urlencode({'token': token})}"
            mail = PasswordResetMail(user.email, link, max(1, accounts.password_reset_ttl // 60))
            # After the answer is sent, as Plausible's deliver_later: its time does not tell the account exists.
            background = BackgroundTask(_queue_reset_mail, resources, user.id, mail)
        return Template("password_forgot.html", context={"form": FormState(), "sent": email}, background=background)

    @get("/password/reset")
    async def reset_page(self, resources: Res, token: FromQuery[str] = "") -> Template:
        async with resources.sessions() as session:
            user = await user_for_token(session, resources.settings.security.secret_key, token)
        if user is None:
            return Template("password_reset.html", status_code=400,
                            context={"form": FormState(summary=[(None, INVALID_LINK)]), "token": None})
        return Template("password_reset.html", context={"form": FormState(), "token": token, "email": user.email})

    @post("/password/reset", status_code=303)
    async def reset(self, request: Request[Any, Any, Any], resources: Res,
                    data: Annotated[ResetForm, Form]) -> Template | Redirect:
        """Set the new password, end every session of the user (the link dies with the old hash), then send
        them to sign in, as Plausible does."""
        email = ""
        try:
            async with resources.sessions.begin() as session:
                user = await user_for_token(session, resources.settings.security.secret_key, data.token, lock=True)
                if user is None:
                    return Template("password_reset.html", status_code=400,
                                    context={"form": FormState(summary=[(None, INVALID_LINK)]), "token": None})
                email, user_id = user.email, user.id
                await set_password(user, data.password, data.password_again)
        except ClientError as exc:
            return Template("password_reset.html", status_code=exc.status_code,
                            context={"form": FormState.failed(exc, {}), "token": data.token, "email": email})
        await WebSocketService(resources.redis, resources.keys).close_user(user_id)
        request.clear_session()
        rotate_session(request)
        flash(request, "Your password is changed and you are signed out everywhere. Sign in with the new one.")
        return Redirect("/login", status_code=303)

    @get("/register")
    async def register_page(self, resources: Res, invitation: FromQuery[str] = "") -> Template:
        return Template("register.html", context={
            "form": FormState(), "invitation": invitation[:200],
            "mode": resources.settings.accounts.registration})

    @post("/register", status_code=303)
    async def register(self, request: Request[Any, Any, Any], resources: Res,
                       data: Annotated[RegisterForm, Form]) -> Template | Redirect:
        verdict = await RegistrationThrottle(resources.redis, resources.keys, resources.settings.accounts).attempt(
            client_address(request))
        if not verdict.allowed:
            error = TooManyRequests(f"email: too many registrations from your address; try again in "
                                    f"{verdict.retry_after} s")
            return Template("register.html", status_code=error.status_code,
                            headers={"Retry-After": str(verdict.retry_after)}, context={
                                "form": FormState.failed(error, {"email": data.email}),
                                "invitation": data.invitation[:200], "mode": resources.settings.accounts.registration})
        try:
            async with resources.sessions.begin() as session:
                invited = False
                if data.invitation:
                    found = await pending_invitation(session, data.invitation)
                    invited = found is not None and found[0].email == data.email.strip().lower()
                user = await register_user(session, data.email, data.password, data.password_again,
                                           registration=resources.settings.accounts.registration, invited=invited)
        except AppError as exc:
            return Template("register.html", status_code=exc.status_code, context={
                "form": FormState.failed(exc, {"email": data.email}), "invitation": data.invitation[:200],
                "mode": resources.settings.accounts.registration})
        start_session(request, user.id, user.session_epoch)
        flash(request, "Welcome to Beacon. Your account is ready.")
        return Redirect(f"/invitations/{data.invitation}" if data.invitation else "/", status_code=303)

    async def _account_page(self, user: User, resources: Resources, *, status: int = 200,
                            forms: dict[str, FormState] | None = None, **extra: Any) -> Template:
        async with resources.sessions() as session:
            keys = await list_api_keys(session, user.id)
        accounts = resources.settings.accounts
        return Template("account.html", status_code=status, context={
            "user": user, "keys": keys, "nav": "account", "notice": None, "new_key": None,
            "session_days": accounts.session_max_age // 86400, "lifetime_days": accounts.session_lifetime // 86400,
            "forms": {"key": FormState(), "password": FormState(), **(forms or {})}, **extra})

    @get("/account")
    async def account(self, user: SignedInUser, resources: Res) -> Template:
        return await self._account_page(user, resources)

    @post("/account/password", status_code=200)
    async def password(self, request: Request[Any, Any, Any], user: SignedInUser, resources: Res,
                       data: Annotated[PasswordForm, Form]) -> Template:
        try:
            async with resources.sessions.begin() as session:
                changed = await change_password(session, user.id, data.current_password, data.new_password,
                                                data.new_password_again)
                epoch = changed.session_epoch
        except ClientError as exc:
            return await self._account_page(user, resources, status=400,
                                            forms={"password": FormState.failed(exc, {})})
        # Every other session of the user has ended with the old epoch; this one goes on under a new id.
        start_session(request, user.id, epoch)
        await WebSocketService(resources.redis, resources.keys).close_user(user.id)
        return await self._account_page(user, resources,
                                        notice="Password changed. You are signed out everywhere else.")

    @post("/account/sessions/end", status_code=303)
    async def end_all_sessions(self, request: Request[Any, Any, Any], user: SignedInUser, resources: Res) -> Redirect:
        """Sign out everywhere: every session of this user ends, this one included."""
        async with resources.sessions.begin() as session:
            await end_sessions(session, user.id)
        await WebSocketService(resources.redis, resources.keys).close_user(user.id)
        request.clear_session()
        rotate_session(request)
        flash(request, "You are signed out everywhere.")
        return Redirect("/login", status_code=303)

    @post("/account/api-keys", status_code=201)
    async def create_key(self, user: SignedInUser, resources: Res, data: Annotated[ApiKeyForm, Form]) -> Template:
        scopes = [data.scopes] if isinstance(data.scopes, str) else list(data.scopes)
        try:
            async with resources.sessions.begin() as session:
                key, plain = await create_api_key(session, user.id, data.name, scopes)
                name = key.name
        except ClientError as exc:
            return await self._account_page(user, resources, status=400, forms={
                "key": FormState.failed(exc, {"name": data.name, "scopes": scopes})})
        return await self._account_page(user, resources, status=201, new_key=plain, new_key_name=name)

    @post("/account/api-keys/{key_id:int}/revoke", status_code=303)
    async def revoke_key(self, request: Request[Any, Any, Any], user: SignedInUser, resources: Res,
                         key_id: FromPath[int]) -> Redirect:
        async with resources.sessions.begin() as session:
            await revoke_api_key(session, user.id, key_id)
        flash(request, "Key revoked: it no longer works.")
        return Redirect("/account#keys", status_code=303)
