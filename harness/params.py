"""Component specs on the command line: ``name`` or ``name:key=value,key=value``.

A value list sweeps a parameter: ``slerp:t=0.1,0.5,0.9`` is three components, and two swept
keys give their cross-product. Values are converted to the dataclass field's type and the
component validates them in ``__post_init__``. A float given as nan or inf is refused for every
component, unless its field opts out with ``metadata={"finite": False}``; a number outside a
field's ``metadata={"min": ..., "max": ...}`` bounds (inclusive, either one alone) is refused
with them. Anything ``__post_init__`` raises, ``sys.exit()`` included, is a one-line error
naming the component.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import typing
from typing import Any, Literal, get_args, get_origin

from harness.component import plugin_call
from harness.errors import HarnessError


def parse_spec(text: str) -> tuple[str, dict[str, list[str]]]:
    """Split ``name:k=v,k=v2,v3`` into the name and each key's list of raw values."""
    name, _, rest = text.strip().partition(":")
    if not name:
        raise HarnessError(f"empty component name in {text!r}; expected name or name:key=value")
    raw: dict[str, list[str]] = {}
    key = None
    for piece in rest.split(",") if rest else []:
        if "=" in piece:
            key, _, value = piece.partition("=")
            key = key.strip()
            if not key:
                raise HarnessError(f"missing parameter name before '=' in {text!r}")
            if key in raw:
                raise HarnessError(f"parameter {key!r} given twice in {text!r}")
            raw[key] = [value.strip()]
        elif key is None:
            raise HarnessError(f"expected key=value after ':' in {text!r}")
        else:
            raw[key].append(piece.strip())  # a sweep: t=0.1,0.5 -> t in (0.1, 0.5)
    return name, raw


def _convert(value: str, kind: Any, where: str) -> Any:
    origin = get_origin(kind)
    if origin is Literal:
        choices = get_args(kind)
        for choice in choices:
            if str(choice) == value:
                return choice
        raise HarnessError(f"{where}={value!r} is not one of {', '.join(map(str, choices))}")
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        args = [a for a in get_args(kind) if a is not type(None)]
        if value.lower() in ("none", "") and len(args) < len(get_args(kind)):
            return None
        return _convert(value, args[0], where)
    try:
        if kind is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind in (int, float, str):
            return kind(value)
    except ValueError:
        raise HarnessError(f"{where}={value!r} is not a valid {kind.__name__}") from None
    raise HarnessError(f"{where}: parameters of type {kind} cannot be set on the command line")


def fields_of(cls: type) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(cls) if f.init] if dataclasses.is_dataclass(cls) else []


def build(cls: type[Any], kind: str, raw: dict[str, str]) -> Any:
    """Instantiate ``cls`` from raw string parameters, with errors a user can act on."""
    fields = {f.name: f for f in fields_of(cls)}
    hints = typing.get_type_hints(cls) if fields else {}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields)) or "none"
        raise HarnessError(f"{kind} {cls.name!r} has no parameter {unknown[0]!r} "
                           f"(its parameters: {known})")
    values = {k: _convert(v, hints[k], f"{cls.name}:{k}") for k, v in raw.items()}
    for k, v in values.items():
        if isinstance(v, float) and not math.isfinite(v) and \
                fields[k].metadata.get("finite", True):
            raise HarnessError(f"{kind} {cls.name!r}: {k}={raw[k]!r} is not a finite number "
                               "(nan and inf are refused)")
        low, high = fields[k].metadata.get("min"), fields[k].metadata.get("max")
        if isinstance(v, int | float) and not isinstance(v, bool) and (
                (low is not None and v < low) or (high is not None and v > high)):
            raise HarnessError(f"{kind} {cls.name!r}: {k}={raw[k]} is not in "
                               f"{'' if low is None else low}..{'' if high is None else high}")
    with plugin_call(f"{kind} {cls.name!r}: __post_init__"):
        try:
            return cls(**values)
        except (ValueError, TypeError) as err:
            raise HarnessError(f"{kind} {cls.name!r}: {err}") from None


def expand(cls: type[Any], kind: str, raw: dict[str, list[str]]) -> list[Any]:
    """One instance per combination of swept values, in the order given."""
    keys = list(raw)
    combos = itertools.product(*(raw[k] for k in keys)) if keys else [()]
    return [build(cls, kind, dict(zip(keys, combo, strict=True))) for combo in combos]


def params_of(obj: Any) -> dict[str, Any]:
    hints = typing.get_type_hints(type(obj)) if fields_of(type(obj)) else {}
    out = {}
    for f in fields_of(type(obj)):
        value = getattr(obj, f.name)
        if hints.get(f.name) is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # `t: float = 1` and t=1 on the command line hash the same
        out[f.name] = value
    return out


def describe(cls: type) -> list[dict[str, Any]]:
    """Parameters of a component class: name, type, default, help."""
    hints = typing.get_type_hints(cls) if fields_of(cls) else {}
    out = []
    for f in fields_of(cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        kind = hints.get(f.name)
        out.append({"name": f.name,
                    "type": getattr(kind, "__name__", None) or str(kind).replace("typing.", ""),
                    "default": default, "help": f.metadata.get("help", "")})
    return out


def label(obj: Any) -> str:
    """``name`` or ``name:key=value,...`` listing only parameters that differ from defaults
    (and from the component's ``label_defaults``, e.g. a settled ``precision=fp32``)."""
    defaults = {d["name"]: d["default"] for d in describe(type(obj))}
    quiet = getattr(type(obj), "label_defaults", {}) or {}
    changed = [f"{k}={v}" for k, v in params_of(obj).items()
               if defaults.get(k) != v and not (k in quiet and quiet[k] == v)]
    return obj.name + (":" + ",".join(changed) if changed else "")
