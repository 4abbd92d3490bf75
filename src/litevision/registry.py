"""One registry type for models and plug-in modules.

Names are explicit: registering a name twice raises, and a miss suggests close names.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from litevision.errors import UserError

T = TypeVar("T")


class UnknownNameError(UserError, KeyError):
    """Raised for a name that is not registered; the message lists close names."""

    def __str__(self) -> str:  # KeyError quotes its argument; show the plain message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    fn: Callable[..., Any]
    meta: T


class Registry(Generic[T]):
    """Maps a name to a builder function and its metadata (a model card, a module card)."""

    def __init__(self, kind: str, list_command: str = "litevision list") -> None:
        self.kind = kind
        self.list_command = list_command
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, fn: Callable[..., Any], meta: T) -> Callable[..., Any]:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered ({self._entries[name].fn.__module__})")
        self._entries[name] = Entry(name, fn, meta)
        return fn

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.miss_message(name)) from None

    def miss_message(self, name: str) -> str:
        if self.kind == "model" and os.path.exists(name):  # a path that is not a run folder or weights file
            return (f"{name}: not a model name, nor a litevision run folder (best.safetensors or last.safetensors) "
                    f"or weights file")
        close = difflib.get_close_matches(name, list(self._entries), n=5, cutoff=0.5)
        if not close:  # prefix matches catch "mobilenetv3" -> "mobilenetv3_large_100"
            close = [n for n in sorted(self._entries) if n.startswith(name)][:5]
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        return f"unknown {self.kind} {name!r}.{hint} (`{self.list_command}` shows all)"

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))
