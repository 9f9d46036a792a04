"""One base for every config (prompt components, training, pretraining, book profiles), one override syntax.

A config is a frozen dataclass deriving from :class:`Config`. ``from_dict`` refuses unknown fields by name,
coerces what YAML gets wrong (``5e-4`` arrives as a string, lists where tuples are meant) and refuses any
other wrong type naming the field; ``validate`` then checks values. ``load`` reads YAML or JSON and names
the file in every error. Commands take overrides as ``--set KEY=VALUE`` (values parsed as YAML, dotted keys
reach into mappings), turned into a dict by :func:`parse_overrides`.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

C = TypeVar("C", bound="Config")


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every config: JSON round-trip, unknown fields and wrong types refused by field name."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any] | None, where: str = "config") -> C:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a mapping of fields, got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {unknown} for {cls.__name__}; allowed: {sorted(names)}")
        data = cls.convert(dict(data), where)
        hints = typing.get_type_hints(cls)
        for key in list(data):
            data[key] = coerce(data[key], hints[key], f"{where}: field {key!r}")
        cfg = cls(**data)
        cfg.validate(where)
        return cfg

    @classmethod
    def convert(cls, data: dict[str, Any], where: str) -> dict[str, Any]:
        """Hook: turn nested values (e.g. data sources) into their types before the type check."""
        return data

    def validate(self, where: str = "config") -> None:
        """Raise ValueError naming the field of an impossible value."""

    def replace(self: C, **changes) -> C:
        return type(self).from_dict({**self.to_dict(), **changes})

    @classmethod
    def load(cls: type[C], path: str | os.PathLike) -> C:
        """A config from a YAML or JSON file; every error names the file."""
        path = Path(path)
        return cls.from_dict(read_yaml(path), where=f"config {path}")


def _unique_key_loader():
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (plain YAML keeps the last silently)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} given twice (the second would silently win)", key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep)

    return UniqueKeyLoader


def read_yaml(path: str | os.PathLike) -> Any:
    """The YAML (or JSON, which is YAML) in ``path``; a missing file or a syntax error names the file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_unique_key_loader())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"{path}: not valid YAML/JSON{at}: {problem}") from None


def coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` as the type ``hint`` asks for, or ValueError naming ``where``.

    Floats accept numbers and numeric strings (YAML reads ``5e-4`` as a string); ints, bools and strings must
    be what they say; a list becomes a tuple where a tuple is declared. Other types pass unchecked.
    """
    options = _union_members(hint)
    if value is None:
        if type(None) in options:
            return None
        raise ValueError(f"{where} may not be null")
    options = [o for o in options if o is not type(None)]
    if len(options) != 1:
        return value
    (target,) = options
    origin = typing.get_origin(target) or target
    if target is float:
        if isinstance(value, bool):
            raise ValueError(f"{where} must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where} must be a number, got {value!r}") from None
    if target is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} must be an integer, got {value!r}")
        return value
    if target is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, got {value!r}")
        return value
    if target is str:
        if not isinstance(value, str):
            raise ValueError(f"{where} must be a string, got {value!r}")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where} must be a list, got {value!r}")
        args = [a for a in typing.get_args(target) if a is not Ellipsis]
        if len(args) == 1:
            return tuple(coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        return tuple(value)
    if origin is dict and not isinstance(value, dict):
        raise ValueError(f"{where} must be a mapping, got {value!r}")
    return value


def _union_members(hint: Any) -> list:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return list(typing.get_args(hint))
    return [hint]


def _plain(value: Any) -> Any:
    """JSON-ready: nested configs as dicts, tuples as lists."""
    if isinstance(value, Config):
        return value.to_dict()
    if hasattr(value, "to_dict") and not isinstance(value, type):
        return _plain(value.to_dict())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# --- overrides ------------------------------------------------------------------------------------------

def parse_overrides(items: list[str] | None, flag: str = "--set") -> dict[str, Any]:
    """``["epochs=2", "method_options.tokens=10"]`` -> ``{"epochs": 2, "method_options": {"tokens": 10}}``.

    Values are YAML (``lr=1e-3``, ``tasks=[gender, age]``, ``deep=true``, ``init=a photo of a``); a dotted
    key sets one entry of a mapping. A malformed item is refused naming it and ``flag``.
    """
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ValueError(f"{flag} {item!r}: expected KEY=VALUE (e.g. {flag} epochs=2)")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text  # not YAML: keep the plain string
        *parents, leaf = key.split(".")
        target = out
        for part in parents:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ValueError(f"{flag} {item!r}: {part!r} is set to a value and used as a mapping")
        target[leaf] = value
    return out


def merge_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``data`` with ``overrides`` laid over it; nested mappings merge key by key."""
    merged = dict(data)
    for key, value in overrides.items():
        base = merged.get(key)
        merged[key] = merge_overrides(base, value) if isinstance(base, dict) and isinstance(value, dict) else value
    return merged


def add_set_argument(parser, what: str = "config fields",
                     example: str = "epochs=1 lr=1e-3 method_options.tokens=4") -> None:
    """The one override option every command shares; ``example`` shows keys that command knows."""
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help=f"override {what}; values in YAML, dotted keys reach into mappings "
                             f"(e.g. --set {example})")
