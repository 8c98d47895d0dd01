"""Walk the pydantic schema by key path and turn validation errors into one-line ConfigErrors.

Shared by the loader (file validation), the override applier (which keys exist) and the run
options. Messages say what was expected and what was given, e.g.
``hwconfigs/x.yaml: memory[1].size_kib: expected a positive number <= 1073741824, got -4``.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from fxpsim.config.hw import KeyedValueError
from fxpsim.errors import ConfigError

Token = Union[str, int]  # noqa: UP007 (runtime alias, also used in isinstance-free code)


@dataclass(frozen=True)
class Spec:
    """One node of the schema: the bare type plus its numeric/length bounds."""

    tp: Any
    bounds: tuple[tuple[str, Any], ...] = ()
    nullable: bool = False

    def bound(self, name: str) -> Any:
        return dict(self.bounds).get(name)


def _bounds_of(metadata: Sequence[Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for m in metadata:
        if isinstance(m, FieldInfo):
            out.extend(_bounds_of(m.metadata))
            continue
        for attr in ("gt", "ge", "lt", "le", "min_length", "max_length"):
            v = getattr(m, attr, None)
            if v is not None:
                out.append((attr, v))
    return out


def make_spec(tp: Any, metadata: Sequence[Any] = ()) -> Spec:
    """Normalise ``Annotated[...]`` / ``X | None`` into a :class:`Spec`."""
    bounds = _bounds_of(metadata)
    nullable = False
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            args = typing.get_args(tp)
            tp, bounds = args[0], bounds + _bounds_of(args[1:])
        elif origin in (Union, types.UnionType):
            args = tuple(a for a in typing.get_args(tp) if a is not type(None))
            nullable = nullable or len(args) < len(typing.get_args(tp))
            if len(args) != 1:
                return Spec(tp, tuple(bounds), nullable)
            tp = args[0]
        else:
            return Spec(tp, tuple(bounds), nullable)


def is_model(spec: Spec) -> bool:
    return isinstance(spec.tp, type) and issubclass(spec.tp, BaseModel)


def field_names(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def child_spec(spec: Spec, token: Token) -> Spec | None:
    """The schema node below ``spec`` for ``token`` (field name, list index or dict key)."""
    if is_model(spec):
        field = spec.tp.model_fields.get(token) if isinstance(token, str) else None
        return None if field is None else make_spec(field.annotation, field.metadata)
    origin = typing.get_origin(spec.tp)
    args = typing.get_args(spec.tp)
    if origin in (list, tuple) and isinstance(token, int):
        return make_spec(args[0])
    if origin is dict and isinstance(token, str):
        choices = literal_choices(make_spec(args[0]))
        if choices is not None and token not in choices:
            return None
        return make_spec(args[1])
    return None


def literal_choices(spec: Spec) -> tuple[Any, ...] | None:
    if typing.get_origin(spec.tp) is Literal:
        return typing.get_args(spec.tp)
    return None


def spec_at(root: type[BaseModel], loc: Sequence[Token]) -> Spec | None:
    spec: Spec | None = make_spec(root)
    for tok in loc:
        if spec is None:
            return None
        spec = child_spec(spec, tok)
    return spec


def _num(v: Any) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return str(v)


def _range(spec: Spec, noun: str) -> str:
    gt, ge, le, lt = (spec.bound(k) for k in ("gt", "ge", "le", "lt"))
    if noun == "integer" and (gt is not None or ge is not None) and le is not None:
        lo = ge if ge is not None else gt + 1
        return f"an integer in {_num(lo)}..{_num(le)}"
    article = "an" if noun == "integer" else "a"
    if gt == 0:
        head = f"a positive {noun}"
    elif ge == 0:
        head = f"a non-negative {noun}"
    elif gt is not None:
        head = f"{article} {noun} > {_num(gt)} and"
    elif ge is not None:
        head = f"{article} {noun} >= {_num(ge)} and"
    else:
        head = f"{article} {noun}"
    upper = [f"<= {_num(le)}"] if le is not None else []
    upper += [f"< {_num(lt)}"] if lt is not None else []
    if not upper:
        return head.removesuffix(" and")
    return f"{head} {' '.join(upper)}"


def describe(spec: Spec) -> str:
    """Human text for what a schema node accepts ("an integer in 1..4096", "one of a, b")."""
    tp = spec.tp
    choices = literal_choices(spec)
    if choices is not None:
        return "one of " + ", ".join(str(c) for c in choices)
    if tp is bool:
        return "true or false"
    if tp is int:
        return _range(spec, "integer")
    if tp is float:
        return _range(spec, "number")
    if tp is str:
        return "a non-empty string" if spec.bound("min_length") else "a string"
    if is_model(spec):
        return "a mapping with keys " + ", ".join(field_names(spec.tp))
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (list, tuple):
        head = "a non-empty list" if spec.bound("min_length") else "a list"
        item = make_spec(args[0])
        if is_model(item):
            return f"{head} of mappings with keys " + ", ".join(field_names(item.tp))
        return f"{head} of {describe(item)}"
    if origin is dict:
        return f"a mapping of name: {describe(make_spec(args[1]))}"
    if origin in (Union, types.UnionType):
        return " or ".join(describe(make_spec(a)) for a in args)
    return getattr(tp, "__name__", str(tp))


_TYPE_WORD = {bool: "a boolean", int: "an integer", float: "a float", str: "a string"}


def show(value: Any, with_type: bool = False) -> str:
    """Short YAML-ish rendering of a user value for messages."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and not math.isfinite(value):
        text = str(value)
    elif isinstance(value, str):
        text = repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    elif isinstance(value, dict):
        return "a mapping"
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(show(v) for v in value[:6]) + (", ...]" if len(value) > 6 else "]")
        return text if not with_type else f"{text} (a list)"
    else:
        text = str(value)
        if len(text) > 60:
            text = text[:57] + "..."
    if with_type:
        word = _TYPE_WORD.get(type(value))
        if word:
            text += f" ({word})"
    return text


def format_loc(loc: Sequence[Token]) -> str:
    out = ""
    for tok in loc:
        if isinstance(tok, int):
            out += f"[{tok}]"
        else:
            out += ("." if out else "") + tok
    return out


def unknown_key_message(key: Any, valid: Sequence[Any]) -> str:
    from fxpsim.suggest import did_you_mean

    return (f"unknown key {show(key)} (valid: {', '.join(str(v) for v in valid)})"
            f"{did_you_mean(key, valid)}")


_TYPE_ERRORS = {"int_type", "float_type", "bool_type", "string_type", "dict_type", "model_type",
                "list_type", "literal_error", "int_parsing", "float_parsing", "bool_parsing",
                "model_attributes_type", "tuple_type"}


def error_parts(root: type[BaseModel], err: Mapping[str, Any]) -> tuple[str, str]:
    """``(key_path, message)`` for one pydantic error dict (``ValidationError.errors()[i]``)."""
    loc = list(err.get("loc", ()))
    etype = err.get("type", "")
    value = err.get("input")
    if loc and loc[-1] == "[key]":
        # a bad key of a dict field: loc = (..., field, key, "[key]")
        parent = spec_at(root, loc[:-2])
        key = loc[-2]
        choices = None
        if parent is not None and typing.get_origin(parent.tp) is dict:
            choices = literal_choices(make_spec(typing.get_args(parent.tp)[0]))
        if choices is not None:
            return format_loc(loc[:-1]), unknown_key_message(key, choices)
        return format_loc(loc[:-2]), f"expected string keys, got {show(key, True)}"
    if etype == "extra_forbidden":
        parent = spec_at(root, loc[:-1])
        valid = field_names(parent.tp) if parent is not None and is_model(parent) else []
        return format_loc(loc), unknown_key_message(loc[-1], valid)
    spec = spec_at(root, loc)
    want = describe(spec) if spec is not None else None
    if etype == "missing":
        kind = "section" if spec is not None and is_model(spec) else "key"
        return format_loc(loc), f"required {kind} is missing (expected {want})"
    if etype == "value_error":
        exc = (err.get("ctx") or {}).get("error")
        if isinstance(exc, KeyedValueError):
            path = format_loc(loc)
            return (f"{path}.{exc.key}" if path else exc.key), str(exc)
        msg = str(exc) if exc is not None else err.get("msg", "invalid value")
        return format_loc(loc), msg
    if etype == "finite_number":
        return format_loc(loc), f"expected a finite number, got {show(value)}"
    if want is None:
        return format_loc(loc), f"{err.get('msg', 'invalid value')}, got {show(value)}"
    hint = ""
    if etype == "literal_error" and isinstance(value, str) and spec is not None:
        from fxpsim.suggest import did_you_mean

        hint = did_you_mean(value, literal_choices(spec) or ())
    return format_loc(loc), f"expected {want}, got {show(value, etype in _TYPE_ERRORS)}{hint}"


def first_error(root: type[BaseModel], exc: ValidationError, source: str) -> ConfigError:
    """The first (deterministic) pydantic error of ``exc`` as a one-line ConfigError."""
    errors = exc.errors(include_url=False)
    key_path, message = error_parts(root, errors[0])
    return ConfigError(source, key_path, message)
