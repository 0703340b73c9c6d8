"""The weekly step's speed tricks, all of them, in one private module.

The step runs for every patient every week, and a clinic steps many thousands of them
(bench/step.py measures one step against its target of 50 us). Each trick here gives
exactly what the plain path gives, only cheaper; tests/test_fast_paths.py holds every one
of them to that path (the models it builds field by field against pydantic's validation:
same keys in the same order, exact types, fields set, JSON, repr, hash, pickle), so that a
change in pydantic or CPython fails a test rather than an output.

When to use one: on the step's hot path only (the code that runs per patient and week), and
only with values that are valid by construction or that `plain_values` (or an exact type
test) has just checked. Anywhere else write the plain code: a model's constructor, getattr,
a NamedTuple's constructor, functools.cached_property. A value from a plugin is never taken
on trust because of where it comes from: only because of what it is (its exact built-in
types), the same test for a built-in plugin and a clinic's.

What each buys, and why it is safe:

- `trusted(cls, values)`: a frozen BaseModel without validation (1 to 4 us saved per model,
  about fifteen models a step). It sets the four slots `model_construct` sets, through their
  descriptors (a third cheaper than object.__setattr__), with one field-name set shared by
  every instance of a frozen class (`_ALL_FIELDS`: nothing changes it in place). Safe when
  `values` gives every field, in declaration order, of the exact type validation gives.
- `dict_setter(cls)`: the setter of a class's instance __dict__, to set a (pydantic or
  plain) frozen dataclass's fields in one go: its own __init__ sets each through
  object.__setattr__ (twice the cost), or validates. Same condition as `trusted`.
- `fields_of(instance)`: a dataclass's fields as its __dict__, for code that reads several
  fields whose names are in variables (one read, then dict lookups). Reading one field, a
  plain getattr is as cheap: use that.
- The reader's fast path (reading/records.py `_plain_records`, `_built`) is the one trick
  kept beside its only caller: pydantic-core validates a chunk of lines with the records'
  own field schemas and the records are built with `dict_setter`; tests/test_reading.py
  holds them equal to validated records field for field (types, order, hash, repr, JSON).
- `tuple_new(cls, values)`: a NamedTuple without its Python-level __new__ (half the cost
  of the twenty-odd Sessions of a week); `values` must give every field, in order.
- `cached_property`: functools.cached_property without the lock it has on Python 3.11
  (a lock per property, shared by every instance, about 0.4 us on each first read).
- `LazyTuple`: a read-only sequence equal to a tuple, made only when first read (the usual
  week's sessions: most rules only need their counts).
- `one_pass_method`: a component's one-pass method (an exercise type's `each_met`), unless
  the one-at-a-time method it must agree with was overridden below it.
- `plain_values`, `OPTIONAL_TEXT`, `SCALARS`: whether what a plugin returned is made of the
  exact built-in types that validation keeps as they are, so that `trusted` may take it;
  anything else is validated, and a bad value is that plugin's failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, Generic, Self, TypeVar, overload

from pydantic import BaseModel

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

# -- models without validation ----------------------------------------------------------

# BaseModel's slots, set as model_construct sets them but through their descriptors.
_SLOTS = BaseModel.__dict__
_set_dict = _SLOTS["__dict__"].__set__
_set_fields_set = _SLOTS["__pydantic_fields_set__"].__set__
_set_extra = _SLOTS["__pydantic_extra__"].__set__
_set_private = _SLOTS["__pydantic_private__"].__set__


def trusted(cls: type[M], values: dict[str, Any]) -> M:
    """A `cls` instance from values the caller has already checked, without validating them.

    `values` becomes the model's __dict__ (not copied: a dict rather than keywords saves a
    copy): it must give every field, in declaration order, with the exact type that
    validation would give (float, not int, for a float field; str, not a subclass).
    """
    model = object.__new__(cls)
    _set_dict(model, values)
    try:
        fields_set = _ALL_FIELDS[cls]
    except KeyError:
        fields_set = _all_fields(cls)
    _set_fields_set(model, fields_set)
    _set_extra(model, None)
    _set_private(model, None)
    return model


#: Each frozen model's set of field names, shared by every instance `trusted` builds (they
#: set every field). Nothing changes it in place: a frozen model refuses assignment, and
#: model_copy copies the set before adding to it. Filled on first use, per class.
_ALL_FIELDS: dict[type[BaseModel], set[str]] = {}


def _all_fields(cls: type[BaseModel]) -> set[str]:
    fields = set(cls.model_fields)
    if not cls.model_config.get("frozen"):
        return fields  # (not shared: an unfrozen model adds to it when a field is assigned)
    return _ALL_FIELDS.setdefault(cls, fields)


def dict_setter(cls: type) -> Callable[[Any, dict[str, Any]], None]:
    """The setter of `cls` instances' __dict__ (the slot of the class that gave them one):
    `set_fields(instance, values)` sets every field of a frozen dataclass in one go.
    `values` gives every field, in declaration order, of the type its validation gives."""
    owner = next(k for k in cls.__mro__ if "__dict__" in vars(k))
    setter: Callable[[Any, dict[str, Any]], None] = vars(owner)["__dict__"].__set__
    return setter


#: A dataclass instance's fields by name: its __dict__, read once, not per field (the builtin
#: `vars`, which returns it, is a C call: no Python frame per use).
fields_of: Callable[[object], dict[str, Any]] = vars


# -- tuples -------------------------------------------------------------------------------

# A NamedTuple's own __new__ is a Python function around tuple.__new__: calling tuple.__new__
# directly, with every field in order, gives the same instance (same type, same fields).
tuple_new = tuple.__new__


class LazyTuple(Sequence[T]):
    """A read-only sequence equal to the tuple `_make` gives, made when first read.

    A subclass gives `_make` and `__len__` (which must not need the items)."""

    __slots__ = ("_made",)

    def __init__(self) -> None:
        self._made: tuple[T, ...] | None = None

    def _make(self) -> tuple[T, ...]:
        raise NotImplementedError

    def _all(self) -> tuple[T, ...]:
        made = self._made
        if made is None:
            made = self._made = self._make()
        return made

    def __len__(self) -> int:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[T, ...]: ...
    def __getitem__(self, index: int | slice) -> T | tuple[T, ...]:
        return self._all()[index]

    def __iter__(self) -> Iterator[T]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyTuple):
            other = other._all()
        return self._all() == other

    __hash__ = None  # type: ignore[assignment]  # (equal to a tuple, but not to be a dict key)

    def __add__(self, other: Sequence[T]) -> tuple[T, ...]:
        return self._all() + tuple(other)

    def __radd__(self, other: Sequence[T]) -> tuple[T, ...]:
        return tuple(other) + self._all()

    def __repr__(self) -> str:
        return repr(self._all())


# -- cached values and methods ------------------------------------------------------------


class cached_property(Generic[T]):  # named after what it stands in for
    """functools.cached_property without the lock it has on Python 3.11 (dropped in 3.12).

    That lock is one per property, shared by every instance: it serialises threads that
    step different patients, and costs about 0.4 us on each first read. Two threads reading
    a fresh property both compute it, and get the same value: use it for pure properties.
    """

    def __init__(self, func: Callable[[Any], T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...
    def __get__(self, instance: object, owner: type | None = None) -> T | Self:
        if instance is None:
            return self
        # Stored where functools stores it: later reads find the value before this descriptor.
        value: T = self.func(instance)
        instance.__dict__[self.name] = value
        return value


def one_pass_method(
    instance: object, one_pass: str, single: str, default: Callable[..., T]
) -> Callable[..., T]:
    """`instance`'s method `one_pass` (which answers for many items at once), unless the
    method `single` it must agree with was overridden below the class that gave `one_pass`
    (or on the instance): then `default` (unbound), which asks `single` of each item."""
    own = vars(instance)
    if single in own and one_pass not in own:
        return partial(default, instance)
    method: Callable[..., T] = getattr(instance, one_pass)
    if one_pass in own:
        return method
    mro = type(instance).__mro__
    one_pass_at = next(i for i, cls in enumerate(mro) if one_pass in vars(cls))
    single_at = next(i for i, cls in enumerate(mro) if single in vars(cls))
    return partial(default, instance) if single_at < one_pass_at else method


# -- what a plugin returns: taken as it is only when plain ----------------------------------

#: The exact types that validation as `Scalar` keeps as they are.
SCALARS = frozenset({str, int, float, bool, type(None)})
#: The exact types that validation as `str | None` keeps as they are.
OPTIONAL_TEXT = frozenset({str, type(None)})


def plain_values(values: object) -> bool:
    """Whether validating `values` as dict[str, Scalar] would give an equal copy of it.

    What any plugin returns is only taken as it is when it is made of exact built-in types
    (no str subclass, no other mapping): anything else is validated.
    """
    if type(values) is not dict:
        return False
    for key, value in values.items():  # a loop: cheaper than all() for a handful of items
        if type(key) is not str or type(value) not in SCALARS:
            return False
    return True
