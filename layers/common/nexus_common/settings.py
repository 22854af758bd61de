"""Settings that fail fast, loaded lazily.

Each handler declares one settings model (a subclass of ``NexusSettings``) with the environment
variables the template gives its function. Fields have no defaults unless a default is truly
harmless: a missing or empty variable fails at first use with a message naming every missing
variable, never as a silent ``""`` table name.

Nothing is read at import time: ``lazy(Factory)`` returns a callable that builds the value on
first call and caches it. ``reset_lazy()`` drops every cached value (tests change the
environment between cases).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

T = TypeVar("T")
S = TypeVar("S", bound="NexusSettings")


class SettingsError(RuntimeError):
    """The environment does not satisfy a settings model."""


class NexusSettings(BaseSettings):
    """Base of every settings model: env vars only, names case-insensitive, frozen, no extras."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="ignore",
        case_sensitive=False,
        str_strip_whitespace=True,
        str_min_length=1,
        env_file=None,
        validate_default=True,
    )


def load_settings(model: type[S]) -> S:
    """Build ``model`` from the environment, or raise ``SettingsError`` naming what is wrong."""
    try:
        return model()
    except ValidationError as exc:
        problems = ", ".join(
            f"{str(err['loc'][0]).upper() if err['loc'] else '?'} ({err['msg']})"
            for err in exc.errors(include_input=False)
        )
        raise SettingsError(f"{model.__name__}: bad environment: {problems}") from None


class Lazy(Generic[T]):
    """A value built on first use by ``factory`` and cached (thread-safe)."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._value: T | None = None
        self._built = False
        _REGISTRY.append(self)

    def __call__(self) -> T:
        if not self._built:
            with self._lock:
                if not self._built:
                    self._value = self._factory()
                    self._built = True
        return self._value  # type: ignore[return-value]

    def reset(self) -> None:
        with self._lock:
            self._value = None
            self._built = False


_REGISTRY: list[Lazy[Any]] = []


def lazy(factory: Callable[[], T]) -> Lazy[T]:
    """Decorator / wrapper: ``get = lazy(build)``; ``get()`` builds once, then caches."""
    return Lazy(factory)


def lazy_settings(model: type[S]) -> Lazy[S]:
    """``settings = lazy_settings(OrdersApiSettings)``; ``settings()`` loads once, fails fast."""
    return Lazy(lambda: load_settings(model))


def reset_lazy() -> None:
    """Forget every lazily built value (settings, repositories) so the next use rebuilds it."""
    for item in list(_REGISTRY):
        item.reset()
