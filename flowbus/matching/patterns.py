"""Compile and evaluate one EventBridge-style trigger pattern.

A pattern is a JSON object matched against a *match document*, the dict flowbus
builds from every consumed record::

    {"id": ..., "source": ..., "type": ..., "subject": ..., "time": ...,
     "topic": ..., "key": ..., "headers": {...}, "data": <the JSON body>}

The language is Amazon EventBridge's content filtering, as implemented by AWS
event-ruler. :func:`compile_pattern` checks a pattern once and turns it into
closures, so matching an event never re-reads the pattern; a
:class:`PatternCompiler` does the same for many patterns, sharing repeated
conditions.

Structure
---------
* Every field of a pattern object must match (AND); nested objects descend
  into the document: ``{"data": {"customer": {"tier": ["gold"]}}}``.
* A leaf is a non-empty array of matchers; the field matches if ANY of them
  matches (OR): ``{"type": ["order.created", "order.updated"]}``.
* ``"$or": [pattern, pattern, ...]`` (at least two non-empty objects) at any
  object level, root or nested, matches if any of the alternatives matches the
  object at that level::

      {"type": ["order.created"],
       "data": {"$or": [{"amount": [{"numeric": [">", 100]}]},
                        {"customer": {"tier": ["gold"]}}]}}

* The empty pattern ``{}`` (at the root only) matches every event, so a
  trigger can take everything on its topic. Empty objects elsewhere are errors.

Matchers
--------
Exact values, one per array item:

* ``"x"`` matches the string ``"x"`` only; ``""`` matches the empty string only.
* ``5`` matches any JSON number equal to 5 (``5``, ``5.0``, ``5e0``); booleans
  are not numbers, and the string ``"5"`` does not match.
* ``true`` / ``false`` match the JSON booleans.
* ``null`` matches a JSON ``null`` only, never a missing field or ``""``.

Operators, one object with exactly one key per array item:

* ``{"prefix": "ord-"}`` / ``{"suffix": ".png"}``: string starts/ends with it.
* ``{"prefix": {"equals-ignore-case": "ORD-"}}`` (and the same for ``suffix``):
  case-insensitive prefix/suffix.
* ``{"equals-ignore-case": "Gold"}``: string equal ignoring case (Unicode
  case folding, so ``"STRASSE"`` equals ``"straße"``).
* ``{"wildcard": "orders/*/lines/*"}``: ``*`` matches any run of characters
  (including none), ``\\*`` a literal star, ``\\\\`` a literal backslash. Two
  consecutive ``*`` and any other backslash escape are errors (as in
  event-ruler).
* ``{"numeric": [">", 0, "<=", 5]}``: JSON numbers in a range. Operators are
  ``=``, ``<``, ``<=``, ``>``, ``>=``; a range has at most one lower and one
  upper bound, ``=`` stands alone, and an empty range is an error. Strings
  such as ``"7"`` and booleans never match.
* ``{"cidr": "10.0.0.0/24"}`` / ``{"cidr": "2001:db8::/32"}``: string IPv4 or
  IPv6 addresses inside the network (a bare address means /32 or /128; host
  bits in the network are ignored).
* ``{"exists": true}``: the field holds at least one leaf value (a scalar,
  including ``null``, or a non-empty array of scalars).
  ``{"exists": false}``: it holds none, i.e. it is absent, an empty array, or
  an object (EventBridge's exists only looks at leaf nodes, so an object value
  counts as "does not exist": ``{"c": [{"exists": false}]}`` matches
  ``{"c": {"c1": 1}}``).
* ``{"anything-but": ...}``: present leaf values other than the ones named.
  Like EventBridge it never matches a missing field. Forms:

  - ``{"anything-but": "cancelled"}`` / ``{"anything-but": 0}``
  - ``{"anything-but": ["cancelled", "void"]}`` (all strings or all numbers)
  - ``{"anything-but": {"prefix": "test-"}}``, ``{"anything-but": {"suffix": ".tmp"}}``
  - ``{"anything-but": {"equals-ignore-case": "X" | ["X", "Y"]}}``
  - ``{"anything-but": {"wildcard": "*/tmp/*" | [...]}}``

  Values of another type than the excluded ones are not excluded, so
  ``{"anything-but": "x"}`` matches ``5``, ``true`` and ``null``.

Arrays in the event
-------------------
Following EventBridge, a leaf matches if any element of an event array
matches (``{"tags": ["vip"]}`` matches ``{"tags": ["new", "vip"]}``); nested
arrays are flattened. Each element is matched on its own, so
``{"anything-but": "a"}`` matches ``["a", "b"]`` (because of ``"b"``).

An object pattern applied to an array of objects matches if it matches at
least one element as a whole, which is event-ruler's
*array-consistent* matching (``rulesForJSONEvent``): ``{"items": {"sku": ["A"],
"qty": [2]}}`` matches ``{"items": [{"sku": "B", "qty": 2}, {"sku": "A", "qty": 2}]}``
but not ``{"items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}]}``, because
the two fields must come from the same element. Scalars inside such an array
are ignored; an array with no objects at all behaves like a missing object
(so only ``exists: false`` style fields can match beneath it).

Event values are expected to be plain JSON types as produced by a JSON parser
(``dict``, ``list``, ``str``, ``int``, ``float``, ``bool``, ``None``); only the
document root may be any ``Mapping``.
"""

from __future__ import annotations

import ipaddress
import math
import socket
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final, NamedTuple, TypeVar

from flowbus.matching.errors import PatternError

__all__ = [
    "Alternative",
    "Anchor",
    "CompiledPattern",
    "FieldPath",
    "PatternCompiler",
    "PatternError",
    "compile_pattern",
    "residual_pattern",
]

FieldPath = tuple[str, ...]
"""Keys from the document root to a field, e.g. ``("data", "kind")``."""

Alternative = tuple[FieldPath, frozenset[str]]
"""A field and the exact strings it must hold one of."""


class Anchor(NamedTuple):
    """A necessary condition: every matching event satisfies one of ``alternatives``.

    ``field`` is true when the anchor is one leaf of exact strings that the
    pattern requires outright, such as ``"type": ["a", "b"]`` (one
    alternative), rather than derived from an ``$or``; such a leaf can be left
    out of the pattern once the caller has checked it (see
    :func:`residual_pattern`).
    """

    alternatives: tuple[Alternative, ...]
    field: bool


_Loc = tuple[str | int, ...]
_ValueMatcher = Callable[[Any], bool]
_DictMatcher = Callable[[Mapping[str, Any]], bool]
_StrTest = Callable[[str], bool]
_NumTest = Callable[[float], bool]
_T = TypeVar("_T")


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()

_OPERATORS: Final = frozenset(
    {
        "prefix",
        "suffix",
        "equals-ignore-case",
        "wildcard",
        "anything-but",
        "numeric",
        "exists",
        "cidr",
    }
)
_ANYTHING_BUT_OPERATORS: Final = ("prefix", "suffix", "equals-ignore-case", "wildcard")
_NUMERIC_OPERATORS: Final = frozenset({"=", "<", "<=", ">", ">="})


class CompiledPattern:
    """A checked, compiled pattern.

    ``matches(doc)`` tells whether the match document ``doc`` satisfies the
    pattern. ``pattern`` is the source pattern.

    ``anchors`` lists necessary conditions on exact string fields (every
    matching event satisfies each anchor);
    :class:`~flowbus.matching.index.TriggerIndex` uses them to skip patterns
    that cannot match.
    """

    __slots__ = ("anchors", "matches", "pattern")

    def __init__(
        self, pattern: Mapping[str, Any], matches: _DictMatcher, anchors: tuple[Anchor, ...]
    ) -> None:
        self.pattern = pattern
        # An attribute rather than a method: the index calls it for every
        # candidate, and the closure is already the whole evaluation.
        self.matches: _DictMatcher = matches
        self.anchors = anchors

    @property
    def trivial(self) -> bool:
        """Whether the pattern matches every document (e.g. ``{}``)."""
        return self.matches is _always

    def __repr__(self) -> str:
        return f"CompiledPattern({self.pattern!r})"


def compile_pattern(pattern: Mapping[str, Any]) -> CompiledPattern:
    """Check ``pattern`` and compile it; raise :class:`PatternError` if it is invalid.

    >>> p = compile_pattern({"type": ["order.paid"], "data": {"amount": [{"numeric": [">", 9]}]}})
    >>> p.matches({"type": "order.paid", "data": {"amount": 250}})
    True
    """
    return PatternCompiler().compile(pattern)


def residual_pattern(pattern: Mapping[str, Any], checked: Collection[FieldPath]) -> dict[str, Any]:
    """``pattern`` without the field anchors in ``checked``, for a caller that verified them.

    A checked field is a leaf of exact strings the pattern requires outright
    (an ``Anchor.field``) that the caller found holding one of those strings
    as a plain value, reached through objects only (no arrays). The residual
    then matches such a document exactly when ``pattern`` does; objects left
    empty are dropped, and ``{}`` means nothing is left to test. ``$or``
    branches are kept whole: which branch an event satisfies is only known by
    evaluating it. ``pattern`` must be valid.

    >>> pattern = {"type": ["a"], "data": {"kind": ["k"], "n": [1]}}
    >>> residual_pattern(pattern, [("type",), ("data", "kind")])
    {'data': {'n': [1]}}
    """

    def strip(obj: Mapping[str, Any], path: FieldPath) -> dict[str, Any]:
        kept: dict[str, Any] = {}
        for key, spec in obj.items():
            field = (*path, key)
            if key != "$or" and isinstance(spec, Mapping):
                rest = strip(spec, field)
                if rest:
                    kept[key] = rest
            elif not (field in checked and _exact_strings(spec)):
                kept[key] = spec
        return kept

    return strip(pattern, ())


def _exact_strings(spec: object) -> bool:
    return isinstance(spec, list) and bool(spec) and all(isinstance(v, str) for v in spec)


# --------------------------------------------------------------------------- objects

# (matcher for the object, matcher for the field holding it, anchors)
_CompiledObject = tuple[_DictMatcher, _ValueMatcher, tuple[Anchor, ...]]
_CompiledLeaf = tuple[_ValueMatcher, frozenset[str] | None]


class PatternCompiler:
    """Compiles many patterns, sharing the compiled form of repeated conditions.

    Triggers repeat the same conditions ("amount > 100", "tier is gold or
    platinum", "status not cancelled") across many patterns. One compiled
    matcher per distinct condition keeps the working set small, so matching
    against thousands of patterns stays in the CPU caches. Use one compiler
    for one set of patterns (as :class:`~flowbus.matching.index.TriggerIndex`
    does) and drop it with them.
    """

    def __init__(self) -> None:
        # Keyed by repr, which (unlike JSON text) tells 1, 1.0 and True apart;
        # objects also by where they sit, since their anchors name paths. The
        # compiled patterns keep the source objects alive, so a repr quoting
        # an object's address cannot be reused by another object meanwhile.
        self._objects: dict[tuple[FieldPath, str], _CompiledObject] = {}
        self._leaves: dict[str, _CompiledLeaf] = {}

    def compile(self, pattern: Mapping[str, Any]) -> CompiledPattern:
        """Check ``pattern`` and compile it; raise :class:`PatternError` if it is invalid."""
        matcher, _, anchors = self._compile_object(pattern, (), (), root=True)
        return CompiledPattern(pattern, matcher, anchors)

    def _compile_object(
        self, obj: object, loc: _Loc, doc_path: FieldPath, *, root: bool = False
    ) -> _CompiledObject:
        if not isinstance(obj, Mapping):
            raise PatternError(_fmt(loc), "a pattern must be a JSON object")
        if not obj and not root:
            raise PatternError(_fmt(loc), "an empty object matches nothing; remove it")
        cache_key = (doc_path, repr(obj))
        cached = self._objects.get(cache_key)
        if cached is not None:
            return cached
        fields: list[tuple[str, _ValueMatcher]] = []
        or_groups: list[tuple[_DictMatcher, ...]] = []
        anchors: list[Anchor] = []
        for key, spec in obj.items():
            if not isinstance(key, str):
                raise PatternError(_fmt(loc), f"field names must be strings, got {key!r}")
            key_loc = (*loc, key)
            path = (*doc_path, key)
            if key == "$or":
                branches, anchor = self._compile_or(spec, key_loc, doc_path)
                or_groups.append(branches)
                if anchor:
                    anchors.append(anchor)
            elif isinstance(spec, list):
                leaf, exact_strings = self._compile_leaf(spec, key_loc)
                fields.append((key, leaf))
                if exact_strings:
                    anchors.append(Anchor(((path, exact_strings),), field=True))
            elif isinstance(spec, Mapping):
                _, child, child_anchors = self._compile_object(spec, key_loc, path)
                fields.append((key, child))
                anchors.extend(child_anchors)
            else:
                raise PatternError(
                    _fmt(key_loc), "must be an array of matchers or a nested pattern object"
                )
        on_dict = _dict_matcher(tuple(fields), tuple(or_groups))
        on_value = _object_value_matcher(on_dict, tuple(fields), bool(or_groups))
        compiled = on_dict, on_value, tuple(anchors)
        self._objects[cache_key] = compiled
        return compiled

    def _compile_or(
        self, spec: object, loc: _Loc, doc_path: FieldPath
    ) -> tuple[tuple[_DictMatcher, ...], Anchor | None]:
        if not isinstance(spec, list) or len(spec) < 2:
            raise PatternError(_fmt(loc), "$or needs an array of at least two pattern objects")
        branches: list[_DictMatcher] = []
        branch_anchors: list[tuple[Anchor, ...]] = []
        for i, branch in enumerate(spec):
            matcher, _, anchors = self._compile_object(branch, (*loc, i), doc_path)
            branches.append(matcher)
            branch_anchors.append(anchors)
        # The group can only match if some branch does, so one anchor per
        # branch, OR-ed together, is a necessary condition for the group.
        # Without an anchor in every branch there is nothing to index on.
        if not all(branch_anchors):
            return tuple(branches), None
        merged: dict[FieldPath, frozenset[str]] = {}
        for anchors in branch_anchors:
            best = min(
                anchors,
                key=lambda a: (len(a.alternatives), sum(len(v) for _, v in a.alternatives)),
            )
            for path, values in best.alternatives:
                merged[path] = merged.get(path, frozenset()) | values
        return tuple(branches), Anchor(tuple(merged.items()), field=False)

    def _compile_leaf(self, spec: list[Any], loc: _Loc) -> _CompiledLeaf:
        if not spec:
            raise PatternError(_fmt(loc), "needs at least one matcher")
        cache_key = repr(spec)
        cached = self._leaves.get(cache_key)
        if cached is not None:
            return cached
        leaf = _Leaf()
        for i, item in enumerate(spec):
            leaf.add(item, (*loc, i))
        compiled = leaf.build()
        self._leaves[cache_key] = compiled
        return compiled


def _dict_matcher(
    fields: tuple[tuple[str, _ValueMatcher], ...], or_groups: tuple[tuple[_DictMatcher, ...], ...]
) -> _DictMatcher:
    # Specialised shapes for the common small patterns: a loop over a tuple
    # costs more than the field tests themselves.
    if not or_groups:
        if not fields:
            return _always
        if len(fields) == 1:
            ((k1, m1),) = fields
            return lambda d: m1(d.get(k1, _MISSING))
        if len(fields) == 2:
            (k1, m1), (k2, m2) = fields
            return lambda d: m1(d.get(k1, _MISSING)) and m2(d.get(k2, _MISSING))

        def match_fields(d: Mapping[str, Any]) -> bool:
            # A plain loop: all() over a generator costs a frame per call.
            for key, matcher in fields:  # noqa: SIM110
                if not matcher(d.get(key, _MISSING)):
                    return False
            return True

        return match_fields

    def match_with_or(d: Mapping[str, Any]) -> bool:
        for key, matcher in fields:
            if not matcher(d.get(key, _MISSING)):
                return False
        for branches in or_groups:
            for branch in branches:
                if branch(d):
                    break
            else:
                return False
        return True

    return match_with_or


def _object_value_matcher(
    on_dict: _DictMatcher, fields: tuple[tuple[str, _ValueMatcher], ...], has_or: bool
) -> _ValueMatcher:
    """Apply an object pattern to whatever the event holds at that field."""
    # Absent, scalar and object-free arrays all leave the children missing.
    on_missing = on_dict({})

    def across(items: list[Any]) -> bool:
        objects = _objects_in(items)
        if not objects:
            return on_missing
        return any(on_dict(obj) for obj in objects)

    if len(fields) == 1 and not has_or:
        # One field (the usual "data": {"amount": ...}): test it inline
        # rather than through on_dict, one call less per nesting level.
        ((k1, m1),) = fields

        def match_one(v: Any) -> bool:
            if type(v) is dict:
                return m1(v.get(k1, _MISSING))
            if type(v) is list:
                return across(v)
            return on_missing

        return match_one

    def match(v: Any) -> bool:
        if type(v) is dict:
            return on_dict(v)
        if type(v) is list:
            return across(v)
        return on_missing

    return match


def _objects_in(items: list[Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for item in items:
        if type(item) is dict:
            found.append(item)
        elif type(item) is list:
            found.extend(_objects_in(item))
    return found


def _scalars_in(items: list[Any]) -> list[Any]:
    found: list[Any] = []
    for item in items:
        if type(item) is list:
            found.extend(_scalars_in(item))
        elif type(item) is not dict:
            found.append(item)
    return found


# --------------------------------------------------------------------------- leaves


class _Leaf:
    """Collects one leaf's matchers by the event value type they can accept."""

    def __init__(self) -> None:
        self.strings: set[str] = set()
        self.numbers: set[float] = set()
        self.booleans: set[bool] = set()
        self.null = False
        self.prefixes: list[str] = []
        self.suffixes: list[str] = []
        self.folded: set[str] = set()
        self.folded_prefixes: list[str] = []
        self.folded_suffixes: list[str] = []
        self.wildcards: list[_Wildcard] = []
        self.networks: list[tuple[int, int, int]] = []
        self.str_tests: list[_StrTest] = []
        self.num_tests: list[_NumTest] = []
        # Whole value types accepted outright (by exists: true, or by an
        # anything-but that excludes values of another type).
        self.any_str = self.any_num = self.any_bool = self.any_null = False
        self.exists_false = False
        self.only_exact_strings = True

    # ----------------------------------------------------------------- parsing

    def add(self, item: object, loc: _Loc) -> None:
        if isinstance(item, str):
            self.strings.add(item)
            return
        self.only_exact_strings = False
        if isinstance(item, bool):
            self.booleans.add(item)
        elif item is None:
            self.null = True
        elif isinstance(item, int | float):
            self.numbers.add(_number(item, loc, "exact number"))
        elif isinstance(item, Mapping):
            self._add_operator(item, loc)
        else:
            raise PatternError(
                _fmt(loc), "a matcher must be a string, number, boolean, null or operator object"
            )

    def _add_operator(self, item: Mapping[Any, Any], loc: _Loc) -> None:
        if len(item) != 1:
            raise PatternError(
                _fmt(loc),
                f"a matcher object needs exactly one operator, got {sorted(map(str, item))}",
            )
        ((op, arg),) = item.items()
        if op not in _OPERATORS:
            raise PatternError(_fmt(loc), f"unknown operator {op!r}")
        if op == "prefix":
            self._add_affix(arg, loc, op, self.prefixes, self.folded_prefixes)
        elif op == "suffix":
            self._add_affix(arg, loc, op, self.suffixes, self.folded_suffixes)
        elif op == "equals-ignore-case":
            self.folded.add(_string(arg, loc, op).casefold())
        elif op == "wildcard":
            self.wildcards.append(_wildcard(_string(arg, loc, op), loc))
        elif op == "numeric":
            self._add_numeric(arg, loc)
        elif op == "exists":
            if not isinstance(arg, bool):
                raise PatternError(_fmt(loc), "exists takes true or false")
            if arg:
                self.any_str = self.any_num = self.any_bool = self.any_null = True
            else:
                self.exists_false = True
        elif op == "cidr":
            self.networks.append(_network(arg, loc))
        else:
            self._add_anything_but(arg, loc)

    def _add_affix(
        self, arg: object, loc: _Loc, op: str, plain: list[str], folded: list[str]
    ) -> None:
        if isinstance(arg, Mapping):
            if set(arg) != {"equals-ignore-case"}:
                raise PatternError(
                    _fmt(loc), f'{op} takes a string or {{"equals-ignore-case": string}}'
                )
            folded.append(_non_empty(arg["equals-ignore-case"], loc, op).casefold())
        else:
            plain.append(_non_empty(arg, loc, op))

    def _add_numeric(self, arg: object, loc: _Loc) -> None:
        bounds = _numeric_bounds(arg, loc)
        if isinstance(bounds, float | int):
            self.numbers.add(bounds)
        else:
            self.num_tests.append(_range_test(*bounds))

    def _add_anything_but(self, arg: object, loc: _Loc) -> None:
        usage = (
            "anything-but takes a string, a number, an array of only strings or only numbers, "
            "or an object with prefix, suffix, equals-ignore-case or wildcard"
        )
        excludes_strings = True
        if isinstance(arg, str):
            excluded = frozenset({arg})
            self.str_tests.append(lambda s: s not in excluded)
        elif isinstance(arg, int | float) and not isinstance(arg, bool):
            excluded_n = frozenset({_number(arg, loc, "anything-but")})
            self.num_tests.append(lambda x: x not in excluded_n)
            excludes_strings = False
        elif isinstance(arg, list):
            if arg and all(isinstance(v, str) for v in arg):
                excluded = frozenset(arg)
                self.str_tests.append(lambda s: s not in excluded)
            elif arg and all(isinstance(v, int | float) and not isinstance(v, bool) for v in arg):
                excluded_n = frozenset(_number(v, loc, "anything-but") for v in arg)
                self.num_tests.append(lambda x: x not in excluded_n)
                excludes_strings = False
            else:
                raise PatternError(_fmt(loc), usage)
        elif isinstance(arg, Mapping) and len(arg) == 1:
            ((op, value),) = arg.items()
            if op not in _ANYTHING_BUT_OPERATORS:
                raise PatternError(_fmt(loc), usage)
            self.str_tests.append(_anything_but_string_test(op, value, loc))
        else:
            raise PatternError(_fmt(loc), usage)
        # Values of other types are not excluded, so they match.
        if excludes_strings:
            self.any_num = True
        else:
            self.any_str = True
        self.any_bool = self.any_null = True

    # ----------------------------------------------------------------- building

    def build(self) -> _CompiledLeaf:
        """The leaf's matcher, and its strings when it is nothing but exact strings."""
        strings = frozenset(self.strings)
        str_test = self._str_test(strings)
        exact = strings if self.only_exact_strings else None
        accepts_numbers = self.any_num or bool(self.numbers) or bool(self.num_tests)
        accepts_booleans = self.any_bool or bool(self.booleans)
        null_ok = self.any_null or self.null
        if not (accepts_numbers or accepts_booleans or null_ok or self.exists_false):
            return _string_leaf(str_test), exact
        bool_test: Callable[[bool], bool] = (
            _always if self.any_bool else frozenset(self.booleans).__contains__
        )
        matcher = _general_leaf(str_test, self._num_test(), bool_test, null_ok, self.exists_false)
        return matcher, exact

    def _str_test(self, strings: frozenset[str]) -> _StrTest:
        if self.any_str:
            return _always
        tests: list[_StrTest] = []
        if self.prefixes:
            prefixes = tuple(self.prefixes)
            tests.append(lambda s: s.startswith(prefixes))
        if self.suffixes:
            suffixes = tuple(self.suffixes)
            tests.append(lambda s: s.endswith(suffixes))
        if self.folded or self.folded_prefixes or self.folded_suffixes:
            tests.append(
                _folded_test(
                    frozenset(self.folded), tuple(self.folded_prefixes), tuple(self.folded_suffixes)
                )
            )
        if self.wildcards:
            tests.append(_wildcards_test(self.wildcards))
        if self.networks:
            tests.append(_cidr_test(self.networks))
        tests.extend(self.str_tests)
        return _any_of(strings, tests)

    def _num_test(self) -> _NumTest:
        if self.any_num:
            return _always
        return _any_of(frozenset(self.numbers), self.num_tests)


def _always(_value: object) -> bool:
    return True


def _never(_value: object) -> bool:
    return False


def _any_of(exact: frozenset[_T], tests: list[Callable[[_T], bool]]) -> Callable[[_T], bool]:
    if not tests:
        return exact.__contains__ if exact else _never
    if not exact and len(tests) == 1:
        return tests[0]
    all_tests = tuple(tests)

    def test(value: _T) -> bool:
        if value in exact:
            return True
        return any(t(value) for t in all_tests)

    return test


def _string_leaf(str_test: _StrTest) -> _ValueMatcher:
    """A leaf that only ever matches strings (the common case, kept lean)."""

    def match(v: Any) -> bool:
        if type(v) is str:
            return str_test(v)
        if type(v) is list:
            return any(type(x) is str and str_test(x) for x in _scalars_in(v))
        return False

    return match


def _general_leaf(
    str_test: _StrTest,
    num_test: _NumTest,
    bool_test: Callable[[bool], bool],
    null_ok: bool,
    absent_ok: bool,
) -> _ValueMatcher:
    def scalar(v: Any) -> bool:
        t = type(v)
        if t is str:
            return str_test(v)
        if t is int or t is float:
            return num_test(v)
        if t is bool:
            return bool_test(v)
        return v is None and null_ok

    def match(v: Any) -> bool:
        t = type(v)
        if t is str:
            return str_test(v)
        if t is int or t is float:
            return num_test(v)
        if t is list:
            scalars = _scalars_in(v)
            if not scalars:
                return absent_ok
            return any(scalar(x) for x in scalars)
        if v is _MISSING or t is dict:
            return absent_ok
        return scalar(v)

    return match


# --------------------------------------------------------------------------- operators


def _folded_test(
    exact: frozenset[str], prefixes: tuple[str, ...], suffixes: tuple[str, ...]
) -> _StrTest:
    def test(s: str) -> bool:
        folded = s.casefold()
        return (
            folded in exact
            or (bool(prefixes) and folded.startswith(prefixes))
            or (bool(suffixes) and folded.endswith(suffixes))
        )

    return test


# A wildcard as its literal pieces: text between the stars, the first and last anchored.
_Wildcard = tuple[str, ...]


def _wildcards_test(wildcards: list[_Wildcard]) -> _StrTest:
    patterns = tuple(wildcards)
    return lambda s: any(_wildcard_matches(w, s) for w in patterns)


def _wildcard_matches(pieces: _Wildcard, s: str) -> bool:
    """Whether `s` matches: one `startswith`, one `endswith` and a `find` per inner piece.

    Taking each inner piece at its leftmost place is always right when `*` is the only
    operator, so the cost is linear in `s`; a regular expression with several `.*` would
    backtrack for minutes over a long value with near misses.
    """
    if len(pieces) == 1:
        return s == pieces[0]
    first, *inner, last = pieces
    end = len(s) - len(last)
    if end < len(first) or not s.startswith(first) or not s.endswith(last):
        return False
    at = len(first)
    for piece in inner:
        found = s.find(piece, at, end)
        if found < 0:
            return False
        at = found + len(piece)
    return True


def _wildcard(wildcard: str, loc: _Loc) -> _Wildcard:
    pieces: list[str] = []
    current: list[str] = []
    i = 0
    previous_star = False
    while i < len(wildcard):
        char = wildcard[i]
        if char == "\\":
            escaped = wildcard[i + 1 : i + 2]
            if escaped not in ("*", "\\"):
                raise PatternError(_fmt(loc), "wildcard: a backslash may only escape '*' or '\\'")
            current.append(escaped)
            previous_star = False
            i += 2
            continue
        if char == "*":
            if previous_star:
                raise PatternError(_fmt(loc), "wildcard: consecutive '*' are not allowed")
            pieces.append("".join(current))
            current = []
            previous_star = True
        else:
            current.append(char)
            previous_star = False
        i += 1
    pieces.append("".join(current))
    return tuple(pieces)


def _anything_but_string_test(op: str, value: object, loc: _Loc) -> _StrTest:
    if op == "prefix":
        prefix = _non_empty(value, loc, "anything-but prefix")
        return lambda s: not s.startswith(prefix)
    if op == "suffix":
        suffix = _non_empty(value, loc, "anything-but suffix")
        return lambda s: not s.endswith(suffix)
    values = _strings(value, loc, f"anything-but {op}")
    if op == "equals-ignore-case":
        folded = frozenset(v.casefold() for v in values)
        return lambda s: s.casefold() not in folded
    matches = _wildcards_test([_wildcard(v, loc) for v in values])
    return lambda s: not matches(s)


def _numeric_bounds(arg: object, loc: _Loc) -> float | tuple[float, bool, float, bool]:
    """A number for ``=``, else ``(low, low_inclusive, high, high_inclusive)``."""
    if not isinstance(arg, list) or not arg or len(arg) % 2:
        raise PatternError(_fmt(loc), "numeric needs pairs of operator and number")
    low, low_inclusive, high, high_inclusive = -math.inf, False, math.inf, False
    has_low = has_high = False
    equals: float | None = None
    for i in range(0, len(arg), 2):
        op, operand = arg[i], arg[i + 1]
        if not isinstance(op, str) or op not in _NUMERIC_OPERATORS:
            raise PatternError(
                _fmt(loc), f"numeric operator must be one of =, <, <=, >, >=; got {op!r}"
            )
        if isinstance(operand, bool) or not isinstance(operand, int | float):
            raise PatternError(_fmt(loc), "numeric needs pairs of operator and number")
        number = _number(operand, loc, "numeric")
        if op == "=":
            if len(arg) != 2:
                raise PatternError(_fmt(loc), "numeric '=' cannot be combined with other operators")
            equals = number
        elif op in (">", ">="):
            if has_low:
                raise PatternError(_fmt(loc), "numeric has more than one lower bound")
            has_low, low, low_inclusive = True, number, op == ">="
        else:
            if has_high:
                raise PatternError(_fmt(loc), "numeric has more than one upper bound")
            has_high, high, high_inclusive = True, number, op == "<="
    if equals is not None:
        return equals
    if low > high or (low == high and not (low_inclusive and high_inclusive)):
        raise PatternError(_fmt(loc), "numeric range is empty")
    return low, low_inclusive, high, high_inclusive


def _range_test(low: float, low_inclusive: bool, high: float, high_inclusive: bool) -> _NumTest:
    if low_inclusive and high_inclusive:
        return lambda x: low <= x <= high
    if low_inclusive:
        return lambda x: low <= x < high
    if high_inclusive:
        return lambda x: low < x <= high
    return lambda x: low < x < high


def _network(arg: object, loc: _Loc) -> tuple[int, int, int]:
    if not isinstance(arg, str):
        raise PatternError(_fmt(loc), 'cidr takes a string such as "10.0.0.0/24"')
    try:
        network = ipaddress.ip_network(arg, strict=False)
    except ValueError as exc:
        raise PatternError(_fmt(loc), f"cidr: {exc}") from None
    return network.version, int(network.network_address), int(network.netmask)


def _cidr_test(networks: list[tuple[int, int, int]]) -> _StrTest:
    v4 = tuple((net, mask) for version, net, mask in networks if version == 4)
    v6 = tuple((net, mask) for version, net, mask in networks if version == 6)

    def test(s: str) -> bool:
        # inet_pton is the C parser; ipaddress.ip_address is ten times slower.
        try:
            if ":" in s:
                if not v6:
                    return False
                address = int.from_bytes(socket.inet_pton(socket.AF_INET6, s))
                candidates = v6
            else:
                if not v4:
                    return False
                address = int.from_bytes(socket.inet_pton(socket.AF_INET, s))
                candidates = v4
        except (OSError, ValueError):
            return False
        return any(address & mask == net for net, mask in candidates)

    return test


# --------------------------------------------------------------------------- helpers


def _number(value: int | float, loc: _Loc, what: str) -> float:
    if isinstance(value, float) and not math.isfinite(value):
        raise PatternError(_fmt(loc), f"{what} must be a finite number")
    return value


def _string(value: object, loc: _Loc, what: str) -> str:
    if not isinstance(value, str):
        raise PatternError(_fmt(loc), f"{what} takes a string")
    return value


def _non_empty(value: object, loc: _Loc, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise PatternError(_fmt(loc), f"{what} takes a non-empty string")
    return value


def _strings(value: object, loc: _Loc, what: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise PatternError(_fmt(loc), f"{what} takes a string or a non-empty array of strings")


def _fmt(loc: _Loc) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif text:
            text += f".{part}"
        else:
            text = part
    return text or "<root>"
