"""Dotted command-line overrides of a raw hwconfig mapping.

``mac_array.rows=32``, ``dram.bandwidth_gb_s=25.6``, ``memory[0].size_kib=512``,
``memory.global_sram.size_kib=512`` (a memory chosen by name),
``mac_array.requantizer.rounding_modes=[rne,stochastic]``. Values are YAML scalars/flow
collections (``32`` -> int, ``25.6`` -> float, ``true`` -> bool); key paths are checked
against the schema, so a typo is reported with the valid keys of that section. The result is
validated exactly like a file.
"""

from __future__ import annotations

import copy
import re
import typing
from collections.abc import Mapping
from typing import Any

from fxpsim.config.hw import HwConfig
from fxpsim.config.validate import (
    Spec,
    Token,
    child_spec,
    field_names,
    format_loc,
    is_model,
    literal_choices,
    make_spec,
    show,
    unknown_key_message,
)
from fxpsim.errors import ConfigError

#: an override is one number, name or short flow list; YAML-parsing megabytes takes long
MAX_OVERRIDE_CHARS = 4096
_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_\-]*)((?:\[\d+\])*)")


def parse_key_path(key: str, source: str = "command line") -> list[Token]:
    """``"memory[1].size_kib"`` -> ``["memory", 1, "size_kib"]``."""
    tokens: list[Token] = []
    for part in key.split("."):
        m = _TOKEN.fullmatch(part)
        if m is None:
            raise ConfigError(
                source, key, f"malformed key path (expected name.name or name[index]), at {part!r}"
            )
        tokens.append(m.group(1))
        tokens.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return tokens


def parse_value(text: str, source: str, key: str) -> Any:
    """YAML-parse an override value (aliases refused, NaN/inf refused)."""
    from fxpsim.config.load import check_finite, parse_yaml

    if len(text) > MAX_OVERRIDE_CHARS:
        raise ConfigError(source, key, f"value too long ({len(text)} characters; at most "
                          f"{MAX_OVERRIDE_CHARS})")
    try:
        value = parse_yaml(text, source)
    except ConfigError as exc:
        raise ConfigError(source, key, f"cannot parse value {text!r}: {exc.message}") from None
    check_finite(value, source, key)
    return value


def _valid_keys(spec: Spec) -> list[str]:
    if is_model(spec):
        return field_names(spec.tp)
    if typing.get_origin(spec.tp) is dict:
        choices = literal_choices(make_spec(typing.get_args(spec.tp)[0]))
        return [str(c) for c in choices] if choices else ["<any name>"]
    return []


def _set(raw: dict[str, Any], tokens: list[Token], value: Any, source: str, key: str) -> str:
    """Set ``value`` at ``tokens`` inside ``raw`` (mutated); return the normalised key path."""
    spec: Spec = make_spec(HwConfig)
    node: Any = raw
    done: list[Token] = []
    for depth, tok in enumerate(tokens):
        last = depth == len(tokens) - 1
        if isinstance(node, list):
            if isinstance(tok, str):  # a list entry chosen by its ``name``
                names = [e.get("name") if isinstance(e, dict) else None for e in node]
                if tok not in names:
                    where = format_loc(done)
                    raise ConfigError(
                        source, key,
                        f"no entry named {tok!r} in {where} "
                        f"(names: {', '.join(str(n) for n in names if n is not None)})",
                    )
                tok = names.index(tok)
            if not 0 <= tok < len(node):
                raise ConfigError(
                    source, key,
                    f"index {tok} out of range ({format_loc(done)} has {len(node)} entries)",
                )
            sub = child_spec(spec, tok)
        elif isinstance(node, dict):
            if isinstance(tok, int):
                raise ConfigError(source, key, f"{format_loc(done)} is a mapping, not a list")
            sub = child_spec(spec, tok)
            if sub is None:
                raise ConfigError(source, key, unknown_key_message(tok, _valid_keys(spec)))
        else:
            raise ConfigError(
                source, key, f"{format_loc(done)} is a value ({show(node)}), not a section"
            )
        assert sub is not None
        done.append(tok)
        if last:
            node[tok] = value
            break
        child = node.get(tok) if isinstance(node, dict) else node[tok]
        if child is None and isinstance(node, dict):
            # section absent from the file: create it so defaults + the override apply
            if not (is_model(sub) or typing.get_origin(sub.tp) is dict):
                raise ConfigError(
                    source, key, f"{format_loc(done)} is a value, not a section"
                )
            child = node[tok] = {}
        node, spec = child, sub
    return format_loc(done)


def apply_overrides_tracked(
    raw: Mapping[str, Any], overrides: Mapping[str, str], source: str = "command line"
) -> tuple[dict[str, Any], dict[str, str]]:
    """Like :func:`apply_overrides`; also returns ``{normalised key path: key as given}``."""
    out = copy.deepcopy(dict(raw))
    paths: dict[str, str] = {}
    for key, text in overrides.items():
        value = parse_value(text, source, key)
        path = _set(out, parse_key_path(key, source), value, source, key)
        paths[path] = key
    return out, paths


def apply_overrides(
    raw: dict[str, Any], overrides: Mapping[str, str], source: str = "command line"
) -> dict[str, Any]:
    """A deep copy of ``raw`` with each ``dotted.key[i]=value`` override applied in order.

    Raises :class:`ConfigError` (``source``, the key as given, message) for a key path that
    is not in the schema (listing the valid keys there), an index out of range, an unknown
    memory name, or a value that is not valid YAML. Type/range checks happen when the result
    is validated (see :func:`fxpsim.config.load.validate_raw`).
    """
    return apply_overrides_tracked(raw, overrides, source)[0]
