"""Strict numbers for everything a user types: protocol fields and method hyperparameters.

pydantic's lax mode reads `true` as 1 for an int or float field and accepts inf and nan,
so `--hp ewc_lambda=true` or `--set environment.beta=Infinity` would train and leave a
record that clbench's own readers refuse or misread. `StrictNumbers` refuses both, with
the field named in the error. Importing this module is cheap (pydantic only).
"""

from __future__ import annotations

import math
import types
import typing
from typing import Annotated, Any, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo, field_validator

#: Integers beyond this do not fit the int64 every tensor size and seed is stored in.
INT64_MAX = 2**63 - 1

_CONTAINERS = (tuple, list, set, frozenset)


def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _union_members(tp: Any) -> tuple:
    tp = _strip(tp)
    if typing.get_origin(tp) in (Union, types.UnionType):
        return tuple(_strip(arg) for arg in typing.get_args(tp))
    return (tp,)


def wants_number(tp: Any) -> bool:
    """Whether a field of type `tp` takes a number and not a boolean."""
    members = _union_members(tp)
    return bool not in members and any(m in (int, float) for m in members)


def _element_type(tp: Any) -> Any | None:
    """The element type of a homogeneous container annotation (tuple[X, ...], list[X])."""
    for member in _union_members(tp):
        origin = typing.get_origin(member)
        if origin in _CONTAINERS:
            args = [a for a in typing.get_args(member) if a is not Ellipsis]
            if len(set(map(_strip, args))) == 1:
                return args[0]
    return None


def not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"a boolean ({str(value).lower()}) is not a number")
    return value


#: For numeric fields of models that cannot inherit StrictNumbers: the members of a
#: discriminated union (pydantic forbids a before-validator, which "*" would attach, on
#: the discriminator field).
NotBool = BeforeValidator(not_bool)


def check_number(value: Any, tp: Any) -> Any:
    """Refuse a boolean where `tp` wants a number (before pydantic reads it as 0 or 1)."""
    if wants_number(tp):
        not_bool(value)
    element = _element_type(tp)
    if element is not None and isinstance(value, (list, tuple)):
        for item in value:
            check_number(item, element)
    return value


def check_int_range(value: Any) -> Any:
    """Refuse integers (also inside tuples and lists) that do not fit in an int64."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT64_MAX:
        raise ValueError("the number is too large (beyond a 64-bit integer)")
    if isinstance(value, (list, tuple)):
        for item in value:
            check_int_range(item)
    return value


def one_line(text: str) -> str:
    """`text` with line breaks and other unprintable characters escaped, for error lines
    that echo what the user typed."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def non_finite_path(value: Any, path: str = "") -> str | None:
    """The dotted path of the first inf or nan float in nested dicts and lists, else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "value"
    items = value.items() if isinstance(value, dict) else (
        enumerate(value) if isinstance(value, (list, tuple, set, frozenset)) else ())
    for key, item in items:
        found = non_finite_path(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


class StrictNumbers(BaseModel):
    """Base model: no inf or nan in any float, no boolean for a number, ints fit in int64."""

    model_config = ConfigDict(allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name) if info.field_name else None
        return value if field is None else check_number(value, field.annotation)

    @field_validator("*", mode="after")
    @classmethod
    def _ints_fit_int64(cls, value: Any) -> Any:
        return check_int_range(value)
