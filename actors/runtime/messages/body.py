"""The base of every message body and the checks that decode one.

A body is a frozen, slotted, keyword-only dataclass that names its wire ``TYPE``; subclassing
``Body`` registers it by that name, and ``from_body`` builds one from decoded JSON, checking each
field against its annotation (a checking function built once per annotation, a schema once per
class), so a malformed or unknown field raises ``MessageDecodeError`` and nothing else. The
vocabulary itself is in the channel modules beside this one.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from actors.core.errors import MessageDecodeError

_T = TypeVar("_T", bound="Body")
_REGISTRY: dict[str, type[Body]] = {}


Check = typing.Callable[[str, Any], Any]


def _fail(name: str, what: str) -> typing.NoReturn:
    raise MessageDecodeError(f"field {name!r}: {what}")


def _check_str(name: str, value: Any) -> Any:
    return value if type(value) is str else _fail(name, "expected a string")


def _check_int(name: str, value: Any) -> Any:
    return value if type(value) is int else _fail(name, "expected an integer")


def _check_bool(name: str, value: Any) -> Any:
    return value if type(value) is bool else _fail(name, "expected true or false")


def _check_float(name: str, value: Any) -> Any:
    if type(value) is float:
        return value if math.isfinite(value) else _fail(name, "not finite")
    return float(value) if type(value) is int else _fail(name, "expected a number")


def _check_dict(name: str, value: Any) -> Any:
    return value if type(value) is dict else _fail(name, "expected an object")


def _check_any(name: str, value: Any) -> Any:
    return value


@functools.cache
def _validator(expected: Any) -> Check:
    """A checking function for one annotation, built once per annotation."""
    simple = {str: _check_str, int: _check_int, bool: _check_bool, float: _check_float, dict: _check_dict}
    supertype = getattr(expected, "__supertype__", None)  # a NewType checks as what it wraps
    if supertype is not None:
        return _validator(supertype)
    if expected in simple:
        return simple[expected]
    if expected is Any:
        return _check_any
    origin = typing.get_origin(expected)
    if origin is dict:
        return _check_dict
    if origin in (types.UnionType, typing.Union):
        optional = type(None) in typing.get_args(expected)
        options = [_validator(o) for o in typing.get_args(expected) if o is not type(None)]

        def check_union(name: str, value: Any) -> Any:
            if value is None and optional:
                return None
            for option in options:
                try:
                    return option(name, value)
                except MessageDecodeError:
                    continue
            _fail(name, f"{type(value).__name__} is not {expected}")

        return check_union
    if origin is tuple:
        item = _validator((typing.get_args(expected) or (Any,))[0])

        def check_tuple(name: str, value: Any) -> Any:
            if type(value) is not list and type(value) is not tuple:
                _fail(name, "expected a list")
            return tuple(item(name, v) for v in value)

        return check_tuple
    if isinstance(expected, type) and issubclass(expected, enum.Enum):
        enum_cls = expected

        def check_enum(name: str, value: Any) -> Any:
            try:
                return enum_cls(value)
            except ValueError:
                _fail(name, f"{value!r} is not a {enum_cls.__name__}")

        return check_enum
    if isinstance(expected, type) and issubclass(expected, Body):
        body_cls = expected

        def check_body(name: str, value: Any) -> Any:
            if type(value) is not dict:
                _fail(name, "expected an object")
            return body_cls.from_body(value)

        return check_body
    raise TypeError(f"unsupported message field annotation {expected!r}")


_SCHEMAS: dict[type, dict[str, tuple[Check, bool]]] = {}


def _schema_of(cls: type) -> dict[str, tuple[Check, bool]]:
    # Resolved once per class: get_type_hints is far too slow for every message.
    hints = typing.get_type_hints(cls)
    return {
        f.name: (
            _validator(hints[f.name]),
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Body:
    """Base of every message body. Subclasses set ``TYPE`` and are registered by name."""

    TYPE: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # dataclass(slots=True) builds a second class from the first: the later one wins, and
        # only a different class claiming the same name is an error.
        if cls.TYPE:
            previous = _REGISTRY.get(cls.TYPE)
            if previous is not None and previous.__qualname__ != cls.__qualname__:
                raise TypeError(f"duplicate message type {cls.TYPE}")
            _REGISTRY[cls.TYPE] = cls

    @classmethod
    def from_body(cls: type[_T], body: Mapping[str, Any]) -> _T:
        """Build the message from a decoded body, checking every field.

        Raises:
            MessageDecodeError: a required field is missing, of the wrong type, or unknown.
        """
        schema = _SCHEMAS.get(cls)
        if schema is None:
            schema = _SCHEMAS[cls] = _schema_of(cls)
        for key in body:
            if key not in schema:
                raise MessageDecodeError(f"{cls.TYPE}: unknown field {key!r}")
        kwargs: dict[str, Any] = {}
        for name, (check, required) in schema.items():
            if name in body:
                kwargs[name] = check(name, body[name])
            elif required:
                raise MessageDecodeError(f"{cls.TYPE}: missing field {name!r}")
        return cls(**kwargs)
