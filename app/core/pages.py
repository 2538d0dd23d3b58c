"""Server-rendered pages: form errors next to their fields, flash messages, sparklines, template globals.

Error pages live in :mod:`app.core.error_pages`, below :mod:`app.core.errors` which renders them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from litestar import Request
from litestar.plugins.jinja import JinjaTemplateEngine

from app.core.assets import Assets
from app.core.errors import AppError
from app.core.timezones import site_timezones

logger = logging.getLogger("beacon.pages")

# --- forms ---------------------------------------------------------------------------------------------

_FIELD_MESSAGE = re.compile(r"^([a-z_]+): (.+)$", re.DOTALL)


@dataclass
class FormState:
    """What a form shows: the values to keep and the server's errors, by field name."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    """Field name → message shown next to the field."""
    summary: list[tuple[str | None, str]] = field(default_factory=list)
    """(field or ``None``, full message) for the summary above the form."""

    @classmethod
    def failed(cls, error: AppError, values: dict[str, Any]) -> FormState:
        """Beacon's errors name their field as ``field: message``; that message goes next to the field."""
        match = _FIELD_MESSAGE.match(error.detail)
        if match is None:
            return cls(values=values, summary=[(None, error.detail)])
        name, message = match.groups()
        return cls(values=values, errors={name: message[:1].upper() + message[1:]},
                   summary=[(name, error.detail)])

    def value(self, name: str, default: Any = "") -> Any:
        return self.values.get(name, default)


# --- flash messages ------------------------------------------------------------------------------------

_FLASH_KEY = "flash"


def flash(request: Request[Any, Any, Any], message: str, kind: str = "success") -> None:
    """A message for the next page this browser opens (after a redirect)."""
    session = request.scope.get("session")
    messages = list(session.get(_FLASH_KEY, [])) if isinstance(session, dict) else []
    if not isinstance(session, dict):  # no session yet, or one just cleared (sign-out)
        request.set_session({})
    request.session[_FLASH_KEY] = [*messages, [kind, message]][-5:]


def take_flashes(request: Request[Any, Any, Any] | None) -> list[tuple[str, str]]:
    """The pending messages, removed from the session as they are shown."""
    if request is None or not isinstance(request.scope.get("session"), dict) or _FLASH_KEY not in request.session:
        return []
    messages = request.session.pop(_FLASH_KEY, None) or []
    return [(str(kind), str(message)) for kind, message in messages]


# --- sparklines ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sparkline:
    """The geometry of a small inline SVG line chart (drawn by the template, no JavaScript)."""

    width: int
    height: int
    line: str
    """``points`` of the polyline."""
    area: str
    """``points`` of the filled polygon under the line."""
    last: tuple[float, float]


def sparkline(values: list[int], width: int = 120, height: int = 32, pad: float = 2.0) -> Sparkline:
    top = max(values) if values and max(values) > 0 else 1
    step = (width - 2 * pad) / max(len(values) - 1, 1)
    points = [(round(pad + index * step, 1), round(height - pad - (value / top) * (height - 2 * pad), 1))
              for index, value in enumerate(values or [0])]
    line = " ".join(f"{x},{y}" for x, y in points)
    area = f"{points[0][0]},{height} {line} {points[-1][0]},{height}"
    return Sparkline(width, height, line, area, points[-1])


def configure_templates(engine: JinjaTemplateEngine) -> None:
    """Helpers every template may call."""
    engine.engine.globals["asset"] = Assets().url
    engine.engine.globals["flashes"] = take_flashes
    engine.engine.globals["sparkline"] = sparkline
    engine.engine.globals["blank_form"] = FormState()
    engine.engine.globals["timezones"] = sorted(site_timezones())
