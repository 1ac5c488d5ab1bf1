"""A runtime's options: a frozen dataclass per runtime module (`Options`), set by its registry line
and by --runtime-option NAME=VALUE texts, read into its fields by their types. Light: the CLI
loads it (through the registry) before any runtime."""

from __future__ import annotations

import typing
from dataclasses import dataclass, fields, replace

from ..errors import ConfigError


@dataclass(frozen=True)
class NoOptions:
    """The options of a runtime that takes none."""


BOOL_TEXT = {"on": True, "true": True, "1": True, "yes": True, "off": False, "false": False, "0": False, "no": False}


def with_options(options, given: dict[str, str], runtime: str):
    """A runtime's Options with the --runtime-option texts of `given` read into its fields by their
    types (bool, int, float, str); a name it does not have, or a value of the wrong kind, is a
    ConfigError that names the runtime and the option."""
    hints = typing.get_type_hints(type(options))
    known = [f.name for f in fields(options)]
    values = {}
    for name, text in given.items():
        flag = f"--runtime-option {runtime}.{name}"
        if name not in known:
            raise ConfigError(f"{flag}: {runtime} has no such option (it has: {', '.join(known) or 'none'})")
        kind = hints[name]
        try:
            values[name] = BOOL_TEXT[text.lower()] if kind is bool else kind(text)
        except (KeyError, ValueError):
            wanted = "on or off" if kind is bool else f"a value of type {kind.__name__}"
            raise ConfigError(f"{flag}={text}: expected {wanted}") from None
    return replace(options, **values)  # the Options' own __post_init__ checks the values
