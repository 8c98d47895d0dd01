"""Find, read and validate an accelerator description (YAML or SCALE-Sim ``.cfg``).

``load_hwconfig("edge_npu", {"mac_array.rows": "32"})`` resolves the name, reads the file with
a hardened YAML loader, applies dotted overrides, validates against :class:`HwConfig` and
returns a :class:`LoadedHw` with a content digest for reports. Every user error is a one-line
:class:`~fxpsim.errors.ConfigError` naming the file, the key path and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fxpsim.config.hw import HwConfig
from fxpsim.config.validate import first_error
from fxpsim.errors import ConfigError

MAX_FILE_BYTES = 1 << 20  # an accelerator description is a few KiB; refuse anything huge
MAX_DEPTH = 32
SUFFIXES = (".yaml", ".yml", ".cfg")
PACKAGE = "fxpsim.hwconfigs"


@dataclass(frozen=True)
class LoadedHw:
    """A validated config plus where it came from.

    ``source`` is the file as the user named it (or as resolved from a bare name);
    ``digest`` is the sha256 of the canonical JSON of the resolved config (after overrides),
    so two runs with equal digests simulated the same hardware.
    """

    config: HwConfig
    source: str
    digest: str


# ---- hardened YAML ------------------------------------------------------------------------
class YamlRefused(Exception):
    """Internal: a YAML construct fxpsim refuses (aliases, duplicate keys, deep nesting)."""

    def __init__(self, key_path: str, message: str) -> None:
        super().__init__(message)
        self.key_path = key_path
        self.message = message


class StrictLoader(yaml.SafeLoader):
    """SafeLoader without aliases (no billion-laughs expansion) and with YAML 1.2 floats."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise YamlRefused(
                f"line {mark.line + 1}",
                "YAML aliases (*name) are not supported; write the value out",
            )
        return super().compose_node(parent, index)


# PyYAML (YAML 1.1) reads "1e9" as a string; accept it as a number like YAML 1.2 does.
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _key_text(node: yaml.Node) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else "<complex key>"


def _check_tree(node: yaml.Node, path: str, depth: int) -> None:
    """Reject duplicate keys and absurd nesting, naming the key path."""
    if depth > MAX_DEPTH:
        raise YamlRefused(path, f"nesting deeper than {MAX_DEPTH} levels")
    if isinstance(node, yaml.MappingNode):
        seen: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            key = _key_text(key_node)
            child = f"{path}.{key}" if path else key
            ident = (key_node.tag, key)
            line = key_node.start_mark.line + 1
            if ident in seen:
                raise YamlRefused(
                    child, f"duplicate key (first at line {seen[ident]}, again at line {line})"
                )
            seen[ident] = line
            _check_tree(value_node, child, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_tree(item, f"{path}[{i}]", depth + 1)


def parse_yaml(text: str, source: str) -> Any:
    """Parse one YAML document with :class:`StrictLoader`; errors name ``source``."""
    try:
        # the reader rejects control characters already while it is constructed
        loader = StrictLoader(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, "", f"invalid YAML: {exc}".replace("\n", " ")) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_tree(node, "", 0)
        return loader.construct_document(node)
    except YamlRefused as exc:
        raise ConfigError(source, exc.key_path, exc.message) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(source, where, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, "", f"invalid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(source, "", "invalid YAML: nesting too deep") from None
    except ValueError as exc:  # e.g. an integer literal with thousands of digits
        why = "a number with too many digits" if "digits" in str(exc) else str(exc)
        raise ConfigError(source, "", f"invalid YAML value: {why}") from None
    finally:
        loader.dispose()


def check_finite(data: Any, source: str, path: str = "") -> None:
    """Reject NaN/inf anywhere (YAML ``.nan``/``.inf``); no accelerator number is infinite."""
    if isinstance(data, float) and not math.isfinite(data):
        raise ConfigError(source, path, f"expected a finite number, got {data}")
    if isinstance(data, dict):
        for k, v in data.items():
            check_finite(v, source, f"{path}.{k}" if path else str(k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            check_finite(v, source, f"{path}[{i}]")


# ---- files --------------------------------------------------------------------------------
def _packaged_dir() -> Any:
    try:
        return resources.files(PACKAGE)
    except (ModuleNotFoundError, TypeError):  # not installed as a package (source checkout)
        return None


def resolve_ref(ref: str) -> tuple[str, Any]:
    """``(source, file)`` for ``ref``: an existing path, else ``./hwconfigs/<name>``, else the
    packaged copy. ``file`` is a ``Path`` or an ``importlib.resources`` Traversable."""
    if not ref.strip():
        raise ConfigError("command line", "hw", "expected a hwconfig name or path, got ''")
    path = Path(ref)
    if path.is_file():
        return ref, path
    if path.is_dir():
        raise ConfigError(ref, "", "is a directory, expected a .yaml or .cfg file")
    names = [ref] if ref.endswith(SUFFIXES) else [ref + s for s in SUFFIXES]
    tried: list[str] = [ref]
    if "/" not in ref and "\\" not in ref:
        for name in names:
            local = Path("hwconfigs") / name
            tried.append(str(local))
            if local.is_file():
                return str(local), local
        pkg = _packaged_dir()
        if pkg is not None:
            for name in names:
                tried.append(f"packaged {name}")
                if pkg.joinpath(name).is_file():
                    return str(pkg.joinpath(name)), pkg.joinpath(name)
    from fxpsim.suggest import did_you_mean

    builtins = ", ".join(builtin_names()) or "none found"
    raise ConfigError(
        "command line", "hw",
        f"no hwconfig {ref!r} (tried {', '.join(tried)}; built-in: {builtins})"
        f"{did_you_mean(ref, builtin_names())}",
    )


def builtin_names() -> list[str]:
    """Names of the configs in ``./hwconfigs`` and the packaged copies (sorted, unique)."""
    found: set[str] = set()
    local = Path("hwconfigs")
    dirs: list[Any] = [local] if local.is_dir() else []
    pkg = _packaged_dir()
    if pkg is not None:
        dirs.append(pkg)
    for d in dirs:
        for entry in d.iterdir():
            if entry.name.endswith(SUFFIXES) and entry.is_file():
                found.add(entry.name.rsplit(".", 1)[0])
    return sorted(found)


def read_text(source: str, file: Any) -> str:
    """File contents as text: at most 1 MiB, UTF-8 (a BOM is allowed), not empty."""
    try:
        with file.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read file: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(source, "", f"file is larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            source, "", f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None
    if not text.strip():
        raise ConfigError(source, "", "file is empty")
    return text


def read_raw(source: str, text: str) -> dict[str, Any]:
    """The raw mapping of a YAML or SCALE-Sim file (not yet validated)."""
    if source.lower().endswith(".cfg"):
        from fxpsim.config.scalesim_cfg import scalesim_to_raw

        return scalesim_to_raw(text, source)
    data = parse_yaml(text, source)
    if data is None:
        raise ConfigError(source, "", "file is empty (only comments)")
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__} scalar"
        raise ConfigError(
            source, "", f"expected a mapping at the top level (schema_version: 1, ...), got {kind}"
        )
    check_finite(data, source)
    return data


def validate_raw(raw: Mapping[str, Any], source: str,
                 override_paths: Mapping[str, str] | None = None) -> HwConfig:
    """Validate a raw mapping; the first error becomes a ConfigError.

    An error at (or inside) an overridden key path is reported against ``"command line"``.
    """
    try:
        return HwConfig.model_validate(raw)
    except ValidationError as exc:
        err = first_error(HwConfig, exc, source)
        for path in override_paths or {}:
            if err.key_path == path or err.key_path.startswith((path + ".", path + "[")):
                raise ConfigError("command line", err.key_path, err.message) from None
        raise err from None


def _is_valid(raw: Mapping[str, Any]) -> bool:
    try:
        HwConfig.model_validate(raw)
    except ValidationError:
        return False
    return True


def config_digest(config: HwConfig) -> str:
    """sha256 hex of the canonical JSON (sorted keys, no spaces) of the resolved config."""
    canon = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


def load_hwconfig(ref: str, overrides: Mapping[str, str] | None = None) -> LoadedHw:
    """Resolve ``ref``, read it, apply ``overrides`` (dotted key -> YAML value text), validate.

    ``ref``: an existing file path, or a name with or without ``.yaml``/``.yml``/``.cfg``
    looked up in ``./hwconfigs/`` and then in the packaged ``fxpsim.hwconfigs``.
    Raises :class:`ConfigError` for any bad input (one line, first problem only).
    """
    from fxpsim.config.overrides import apply_overrides_tracked

    source, file = resolve_ref(ref)
    raw = read_raw(source, read_text(source, file))
    if not overrides:
        config = validate_raw(raw, source)
    else:
        new_raw, paths = apply_overrides_tracked(raw, overrides)
        try:
            config = validate_raw(new_raw, source, paths)
        except ConfigError as err:
            if err.source == source and _is_valid(raw):
                # the file alone is fine: a cross-field check broke because of an override
                raise ConfigError("command line", err.key_path, err.message) from None
            raise
    return LoadedHw(config=config, source=source, digest=config_digest(config))
