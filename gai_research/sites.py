"""The three provincial medical centers, as an enum that is cheap to import.

Accept ``Site | str`` at every boundary and convert once with :meth:`Site.parse`.
"""

from __future__ import annotations

from enum import StrEnum

from gai_research.errors import ConfigError

__all__ = ["Site"]


class Site(StrEnum):
    """The three provincial medical centers of the demonstration."""

    SUWON = "SUWON"
    ANSEONG = "ANSEONG"
    ICHEON = "ICHEON"

    @classmethod
    def parse(cls, value: Site | str) -> Site:
        """Accept ``Site`` or any spelling of its name; raise a ConfigError that lists the choices."""
        if isinstance(value, Site):
            return value
        try:
            return cls(str(value).strip().upper())
        except ValueError:
            choices = ", ".join(s.value for s in cls)
            raise ConfigError(f"unknown site {value!r}", hint=f"use one of {choices}") from None
