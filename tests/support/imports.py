"""The imports tests' database and Redis db of their own, and the site each test imports into."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from app.core.settings import Settings


@dataclass
class Imports:
    environment: dict[str, str]
    settings: Settings
    engine: Engine
    state: Path

    def sql(self, statement: str, **params: object) -> list[Any]:
        with self.engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return list(result) if result.returns_rows else []


@dataclass
class Site:
    id: int
    domain: str
    owner: int
