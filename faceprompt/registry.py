"""One kind of registry for every named plug-in: backbones, methods, prompt kinds, detectors, dataset adapters.

A :class:`Registry` is a mapping from name to entry that refuses a second entry under a name it already
holds (two plug-ins claiming one name would otherwise silently replace each other, depending on import
order) and whose unknown-name error lists the known names.
"""
from __future__ import annotations

from typing import Generic, Iterator, Mapping, TypeVar

T = TypeVar("T")


class DuplicateNameError(ValueError):
    """A second entry was registered under a name the registry already holds."""


class Registry(Mapping[str, T], Generic[T]):
    """Name -> entry; ``what`` names the kind of entry in every error ("backbone", "method", ...)."""

    def __init__(self, what: str):
        self.what = what
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.what} needs a non-empty name, got {name!r}")
        if name in self._entries:
            raise DuplicateNameError(
                f"{self.what} {name!r} is already registered ({_describe(self._entries[name])}); "
                f"choose another name")
        self._entries[name] = entry
        return entry

    def remove(self, name: str) -> T:
        """Take an entry out (a plugin unloading, a test cleaning up); an unknown name is an error."""
        entry = self.get_or_raise(name)
        del self._entries[name]
        return entry

    def get_or_raise(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(f"unknown {self.what} {name!r}; known: {', '.join(self._entries)}") from None

    def names(self) -> list[str]:
        return list(self._entries)

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.what}: {', '.join(self._entries)})"


def _describe(entry: object) -> str:
    module = getattr(entry, "__module__", None) or type(entry).__module__
    name = getattr(entry, "__qualname__", None) or type(entry).__qualname__
    return f"by {module}.{name}"
