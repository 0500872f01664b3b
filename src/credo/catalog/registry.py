"""Loading catalogs into a :class:`Registry`, with every error collected as data.

>>> from pathlib import Path
>>> registry, errors = load_catalogs([Path("catalogs")])  # doctest: +SKIP
>>> errors, registry.policy("CN-ZJ-YW").appeal_window_days  # doctest: +SKIP
([], 15)

Loading is beancount-style: each file is parsed and each table, agency,
measure, list and rule validated on its own, so one typo does not hide the
next; then the files are checked against each other (the jurisdiction tree,
unique codes, references). Any error at all and the registry is ``None``: a
half-valid catalog must never score anyone.

Visibility, decided here once:

* a **scheme** (a jurisdiction) counts rules defined at it or above it, and a
  list defined at it or above it is in force there;
* an **agency** may report a rule when the agency's jurisdiction is the rule's
  jurisdiction or inside it (a Hangzhou court may report a national rule; the
  Supreme People's Court may not report a Hangzhou traffic rule);
* a rule may place on a list, and a list may use a measure, only when the list
  (measure) is declared at the rule's (list's) jurisdiction or above it.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from credo.catalog.errors import CatalogError
from credo.catalog.guard import guard, guard_measure_fields, guard_parts, guard_rule_fields
from credo.catalog.models import (
    POLICY_FIELDS,
    SECTIONS,
    Agency,
    CatalogFile,
    Jurisdiction,
    ListDef,
    Measure,
    Policy,
    PolicyOverride,
    Rule,
    grade_for,
)

__all__ = [
    "CatalogError",
    "Registry",
    "build_registry",
    "grade_for",
    "load_catalogs",
    "parse_catalog",
]

_ITEM_SECTIONS: Mapping[str, type[BaseModel]] = {
    "agencies": Agency,
    "measures": Measure,
    "lists": ListDef,
    "rules": Rule,
}
_TOML_POSITION = re.compile(r"at line (\d+), column (\d+)")
_M = TypeVar("_M", bound=BaseModel)


# ---------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------


class Registry:
    """A validated set of catalogs: the jurisdiction tree and everything declared in it.

    Only :func:`load_catalogs` and :func:`build_registry` create one, after
    every check passed. Lookups by code return ``None`` for an unknown code;
    methods about the tree raise :class:`KeyError` for an unknown
    jurisdiction, because that is a caller's bug, not missing data.

    >>> registry.ancestors("CN-ZJ-HZ")  # doctest: +SKIP
    ('CN-ZJ-HZ', 'CN-ZJ', 'CN')
    >>> registry.rule("CN-SD-RC.TRAFFIC-TICKET", date(2020, 12, 31)).version  # doctest: +SKIP
    1
    """

    __slots__ = (
        "_agencies",
        "_children",
        "_digest",
        "_files",
        "_jurisdictions",
        "_lists",
        "_measures",
        "_owner",
        "_policies",
        "_regions",
        "_rules",
    )

    def __init__(self, files: Sequence[CatalogFile]) -> None:
        self._files = tuple(sorted(files, key=lambda f: f.jurisdiction.code))
        self._jurisdictions = {f.jurisdiction.code: f.jurisdiction for f in self._files}
        children: dict[str, list[str]] = {code: [] for code in self._jurisdictions}
        for juris in self._jurisdictions.values():
            if juris.parent is not None:
                children[juris.parent].append(juris.code)
        self._children = {k: tuple(sorted(v)) for k, v in children.items()}
        self._policies = _resolve_all(self._files)
        self._agencies: dict[str, Agency] = {}
        self._measures: dict[str, Measure] = {}
        self._lists: dict[str, ListDef] = {}
        self._rules: dict[str, tuple[Rule, ...]] = {}
        self._owner: dict[tuple[str, str], str] = {}
        self._regions: dict[str, str] = {}
        for f in self._files:
            j = f.jurisdiction.code
            for region in f.jurisdiction.region_codes:
                self._regions[region] = j
            for a in f.agencies:
                self._agencies[a.code] = a
                self._owner["agency", a.code] = j
            for m in f.measures:
                self._measures[m.code] = m
                self._owner["measure", m.code] = j
            for lst in f.lists:
                self._lists[lst.code] = lst
                self._owner["list", lst.code] = j
            for r in f.rules:
                self._rules[r.code] = (*self._rules.get(r.code, ()), r)
                self._owner["rule", r.code] = j
        self._rules = {
            code: tuple(sorted(versions, key=lambda r: r.version))
            for code, versions in sorted(self._rules.items())
        }
        self._digest = _digest(self._files)

    # -- the tree ----------------------------------------------------------

    def _known(self, code: str) -> str:
        if code not in self._jurisdictions:
            raise KeyError(f"unknown jurisdiction {code!r}")
        return code

    def jurisdictions(self) -> tuple[Jurisdiction, ...]:
        """Every jurisdiction, sorted by code."""
        return tuple(f.jurisdiction for f in self._files)

    def jurisdiction(self, code: str) -> Jurisdiction | None:
        return self._jurisdictions.get(code)

    def ancestors(self, code: str) -> tuple[str, ...]:
        """``code`` itself first, then its parent, up to the root."""
        chain = [self._known(code)]
        parent = self._jurisdictions[code].parent
        while parent is not None:
            chain.append(parent)
            parent = self._jurisdictions[parent].parent
        return tuple(chain)

    def is_within(self, code: str, ancestor: str) -> bool:
        """Whether ``code`` is ``ancestor`` or below it (``is_within(j, j)`` is true)."""
        return self._known(ancestor) in self.ancestors(code)

    def children(self, code: str) -> tuple[str, ...]:
        """Direct children of ``code``, sorted."""
        return self._children[self._known(code)]

    def policy(self, code: str) -> Policy:
        """The effective policy of ``code``: its overrides on top of its ancestors'."""
        return self._policies[self._known(code)]

    def jurisdiction_for_region(self, region_code: str) -> str | None:
        """The most specific jurisdiction claiming a GB/T 2260 region code.

        For an organisation's registration region (characters 3-8 of a
        Unified Social Credit Code) or an address. Never pass the first six
        digits of a person's identity number: that is where they were born,
        a trait no rule may use.

        >>> registry.jurisdiction_for_region("330106")  # doctest: +SKIP
        'CN-ZJ-HZ'
        """
        for candidate in (region_code, region_code[:4] + "00", region_code[:2] + "0000"):
            if candidate in self._regions:
                return self._regions[candidate]
        return None

    # -- declarations ------------------------------------------------------

    def _owner_of(self, kind: str, code: str) -> str:
        try:
            return self._owner[kind, code]
        except KeyError:
            raise KeyError(f"unknown {kind} {code!r}") from None

    def agency_jurisdiction(self, code: str) -> str:
        """The jurisdiction whose file declares agency ``code`` (KeyError if unknown)."""
        return self._owner_of("agency", code)

    def rule_jurisdiction(self, code: str) -> str:
        """The jurisdiction that defines rule ``code`` (KeyError if unknown)."""
        return self._owner_of("rule", code)

    def list_jurisdiction(self, code: str) -> str:
        """The jurisdiction that declares list ``code`` (KeyError if unknown)."""
        return self._owner_of("list", code)

    def measure_jurisdiction(self, code: str) -> str:
        """The jurisdiction that declares measure ``code`` (KeyError if unknown)."""
        return self._owner_of("measure", code)

    def agency(self, code: str) -> Agency | None:
        return self._agencies.get(code)

    def agencies(self) -> tuple[Agency, ...]:
        return tuple(self._agencies[c] for c in sorted(self._agencies))

    def measure(self, code: str) -> Measure | None:
        return self._measures.get(code)

    def measures(self) -> tuple[Measure, ...]:
        return tuple(self._measures[c] for c in sorted(self._measures))

    def lists_for(self, code: str) -> tuple[ListDef, ...]:
        """Lists in force in the scheme ``code``: declared at it or above it."""
        visible = set(self.ancestors(code))
        return tuple(self._lists[c] for c in sorted(self._lists) if self._owner["list", c] in visible)

    def rule_versions(self, code: str) -> tuple[Rule, ...]:
        """Every version of rule ``code``, oldest first (empty when unknown)."""
        return self._rules.get(code, ())

    def rule(self, code: str, on: date) -> Rule | None:
        """The version of ``code`` in force on ``on``: ``effective_from <= on < effective_to``.

        ``None`` when the rule is unknown or not in force that day; a record
        of an act on such a day has no rule to be judged by.
        """
        for version in self._rules.get(code, ()):
            if version.in_force(on):
                return version
        return None

    def rules_for_scheme(self, code: str, on: date | None = None) -> tuple[Rule, ...]:
        """Rules a scheme counts: defined at ``code`` or above it.

        Every version, sorted by (code, version); with ``on``, only the
        versions in force that day.
        """
        visible = set(self.ancestors(code))
        return tuple(
            r
            for c, versions in self._rules.items()
            if self._owner["rule", c] in visible
            for r in versions
            if on is None or r.in_force(on)
        )

    def files(self) -> tuple[CatalogFile, ...]:
        """The catalog files, sorted by jurisdiction code (e.g. for a what-if copy)."""
        return self._files

    @property
    def digest(self) -> str:
        """sha256 (hex) of the canonical content: record it with every score.

        Canonical means comments, key order, item order and file names do not
        change it; any change to a value does.
        """
        return self._digest

    # Last, so that the builtin ``list`` is not shadowed in annotations above.
    def list(self, code: str) -> ListDef | None:
        return self._lists.get(code)


def _canonical(f: CatalogFile) -> dict[str, Any]:
    data = f.model_dump(mode="json")
    for section in ("agencies", "measures", "lists"):
        data[section].sort(key=lambda item: item["code"])
    data["rules"].sort(key=lambda item: (item["code"], item["version"]))
    return data


def _digest(files: Sequence[CatalogFile]) -> str:
    content = [_canonical(f) for f in sorted(files, key=lambda f: f.jurisdiction.code)]
    blob = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _resolve_all(files: Sequence[CatalogFile]) -> dict[str, Policy]:
    """Effective policies of a tree already known to be valid."""
    by_code = {f.jurisdiction.code: f for f in files}
    resolved: dict[str, Policy] = {}

    def resolve(code: str) -> Policy:
        if code not in resolved:
            f = by_code[code]
            overrides = f.policy.model_dump(exclude_none=True)
            overrides = {k: getattr(f.policy, k) for k in overrides}
            base = {} if f.jurisdiction.parent is None else dict(resolve(f.jurisdiction.parent))
            resolved[code] = Policy.model_validate({**base, **overrides})
        return resolved[code]

    for code in by_code:
        resolve(code)
    return resolved


# ---------------------------------------------------------------------------
# Parsing one file
# ---------------------------------------------------------------------------


@dataclass
class _Parsed:
    """What one file yielded: valid parts (with their TOML index) and errors."""

    name: str
    jurisdiction: Jurisdiction | None = None
    policy: PolicyOverride | None = None
    agencies: list[tuple[int, Agency]] = field(default_factory=list)
    measures: list[tuple[int, Measure]] = field(default_factory=list)
    lists: list[tuple[int, ListDef]] = field(default_factory=list)
    rules: list[tuple[int, Rule]] = field(default_factory=list)
    # codes of items that failed validation, so references to them are not
    # reported a second time as "unknown"
    broken: dict[str, set[str]] = field(default_factory=dict)
    errors: list[CatalogError] = field(default_factory=list)

    def mark_broken(self, section: str, code: object) -> None:
        if isinstance(code, str):
            self.broken.setdefault(section, set()).add(code)

    def catalog_file(self) -> CatalogFile | None:
        if self.jurisdiction is None:
            return None
        return CatalogFile(
            jurisdiction=self.jurisdiction,
            policy=self.policy or PolicyOverride(),
            agencies=tuple(a for _, a in self.agencies),
            measures=tuple(m for _, m in self.measures),
            lists=tuple(x for _, x in self.lists),
            rules=tuple(r for _, r in self.rules),
        )


def _path(prefix: str, loc: tuple[int | str, ...]) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _message(prefix: str, err: Mapping[str, Any], fields: Iterable[str]) -> str:
    loc: tuple[int | str, ...] = tuple(err["loc"])
    kind = err["type"]
    if kind == "missing":
        text = "is required"
    elif kind == "extra_forbidden":
        text = "unknown field (not part of the catalog format; a typo?)"
    else:
        text = str(err["msg"]).removeprefix("Value error, ")
    # Model-level checks say "points: ..." themselves; hang that on the path.
    if not loc:
        head, sep, rest = text.partition(": ")
        if sep and head in set(fields):
            loc, text = (head,), rest
    return f"{_path(prefix, loc)}: {text}"


def _validate(
    model: type[_M],
    raw: object,
    prefix: str,
    location: str,
    parsed: _Parsed,
) -> _M | None:
    if not isinstance(raw, dict):
        parsed.errors.append(CatalogError(parsed.name, location, f"{prefix}: must be a table, not {raw!r}"))
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            parsed.errors.append(
                CatalogError(parsed.name, location, _message(prefix, err, model.model_fields))
            )
        return None


def _parse(text: str, name: str) -> _Parsed:
    parsed = _Parsed(name)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_POSITION.search(str(exc))
        # "(at end of document)": the last line that holds anything (found by `make fuzz`)
        line = match.group(1) if match else max(1, len(text.rstrip().splitlines()))
        where = f"line {line}"
        parsed.errors.append(CatalogError(name, where, f"TOML syntax error: {exc}"))
        return parsed

    for key in data:
        if key not in SECTIONS:
            parsed.errors.append(
                CatalogError(
                    name,
                    key,
                    f"{key}: unknown table (a catalog has {', '.join(SECTIONS)})",
                )
            )

    if "jurisdiction" not in data:
        parsed.errors.append(CatalogError(name, "jurisdiction", "jurisdiction: is required"))
    else:
        parsed.jurisdiction = _validate(
            Jurisdiction, data["jurisdiction"], "jurisdiction", "jurisdiction", parsed
        )
        if parsed.jurisdiction is None and isinstance(data["jurisdiction"], dict):
            parsed.mark_broken("jurisdiction", data["jurisdiction"].get("code"))

    parsed.policy = _validate(PolicyOverride, data.get("policy", {}), "policy", "policy", parsed)

    for section, model in _ITEM_SECTIONS.items():
        items = data.get(section, [])
        if not isinstance(items, list):
            parsed.errors.append(
                CatalogError(name, section, f"{section}: must be an array of tables ([[{section}]])")
            )
            continue
        valid: list[tuple[int, Any]] = getattr(parsed, section)
        for i, raw in enumerate(items):
            prefix = f"{section}[{i}]"
            code = raw.get("code") if isinstance(raw, dict) else None
            location = code if isinstance(code, str) and code.strip() else prefix
            item = _validate(model, raw, prefix, location, parsed)
            if item is not None:
                valid.append((i, item))
                continue
            parsed.mark_broken(section, code)
            # Still guard what failed validation: `category = "religion"` is
            # both outside the vocabulary and a protected ground.
            if isinstance(raw, dict) and section == "rules":
                parsed.errors += guard_rule_fields(raw, name, location)
            elif isinstance(raw, dict) and section == "measures":
                parsed.errors += guard_measure_fields(raw, name, location)

    catalog = parsed.catalog_file()
    if catalog is not None:
        parsed.errors += guard(catalog, name)
    else:
        parsed.errors += guard_parts((r for _, r in parsed.rules), (m for _, m in parsed.measures), name)
    return parsed


def parse_catalog(text: str, file_name: str) -> tuple[CatalogFile | None, list[CatalogError]]:
    """Validate one catalog file on its own (schema and guard; no cross-file checks).

    >>> parse_catalog('[jurisdiction]\\ncode = "CN"', "cn.toml")[1][0].message
    'jurisdiction.name_en: is required'
    """
    parsed = _parse(text, file_name)
    if parsed.errors:
        return None, parsed.errors
    return parsed.catalog_file(), []


# ---------------------------------------------------------------------------
# Cross-file checks
# ---------------------------------------------------------------------------


class _Checker:
    """Checks files against each other; assumes each file's parts are valid."""

    def __init__(self, parsed: Sequence[_Parsed]) -> None:
        self.parsed = parsed
        self.errors: list[CatalogError] = []
        self.broken: dict[str, set[str]] = {}
        for p in parsed:
            for section, codes in p.broken.items():
                self.broken.setdefault(section, set()).update(codes)
        self.files: dict[str, _Parsed] = {}  # jurisdiction code -> its file
        self.parents: dict[str, str | None] = {}
        self.rooted: dict[str, tuple[str, ...]] = {}  # code -> ancestors, self first
        self.policies: dict[str, Policy] = {}
        self.owner: dict[tuple[str, str], str] = {}
        self.declared_in: dict[tuple[str, str], str] = {}
        self.list_defs: dict[str, ListDef] = {}
        self.measure_defs: dict[str, Measure] = {}

    def error(self, p: _Parsed, location: str, message: str) -> None:
        self.errors.append(CatalogError(p.name, location, message))

    def run(self) -> list[CatalogError]:
        self.tree()
        self.resolve_policies()
        self.declarations()
        self.check_rules()
        self.check_lists()
        return self.errors

    # -- jurisdictions -----------------------------------------------------

    def tree(self) -> None:
        for p in self.parsed:
            j = p.jurisdiction
            if j is None:
                self.orphan(p)
                continue
            if j.code in self.files:
                self.error(
                    p,
                    j.code,
                    f"jurisdiction.code: {j.code} is already declared in {self.files[j.code].name}",
                )
                self.orphan(p)
                continue
            self.files[j.code] = p
            self.parents[j.code] = j.parent

        regions: dict[str, str] = {}
        for code, p in self.files.items():
            assert p.jurisdiction is not None
            for region in p.jurisdiction.region_codes:
                if region in regions:
                    self.error(
                        p,
                        code,
                        f"jurisdiction.region_codes: region {region} is already claimed by {regions[region]}",
                    )
                else:
                    regions[region] = code
            parent = p.jurisdiction.parent
            if (
                parent is not None
                and parent not in self.files
                and parent not in self.broken.get("jurisdiction", set())
            ):
                self.error(
                    p,
                    code,
                    f"jurisdiction.parent: unknown jurisdiction {parent!r} "
                    "(no loaded catalog file declares it)",
                )

        reported: set[frozenset[str]] = set()
        for code in self.files:
            path = [code]
            parent = self.parents[code]
            while parent is not None and parent in self.files and parent not in path:
                path.append(parent)
                parent = self.parents[parent]
            if parent is None:
                self.rooted[code] = tuple(path)
            elif parent in path:
                cycle = path[path.index(parent) :]
                # Start at the smallest code: the same cycle always reads the same.
                start = cycle.index(min(cycle))
                cycle = cycle[start:] + cycle[:start]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    shown = " -> ".join([*cycle, cycle[0]])
                    for member in cycle:
                        self.error(
                            self.files[member],
                            member,
                            f"jurisdiction.parent: the jurisdiction tree has a cycle: {shown}",
                        )

    def orphan(self, p: _Parsed) -> None:
        """A file whose jurisdiction is unusable: its codes exist but are not checked."""
        for section in _ITEM_SECTIONS:
            for _, item in getattr(p, section):
                p.mark_broken(section, item.code)
                self.broken.setdefault(section, set()).add(item.code)

    def within(self, code: str, ancestor: str) -> bool:
        return ancestor in self.rooted.get(code, ())

    def resolve_policies(self) -> None:
        for code in sorted(self.rooted, key=lambda c: len(self.rooted[c])):
            p = self.files[code]
            assert p.jurisdiction is not None
            if p.policy is None:
                continue  # its [policy] table was invalid: already reported
            overrides = {k: getattr(p.policy, k) for k in p.policy.model_dump(exclude_none=True)}
            parent = p.jurisdiction.parent
            if parent is None:
                missing = [f for f in POLICY_FIELDS if f not in overrides]
                if missing:
                    self.error(
                        p,
                        "policy",
                        f"policy.{missing[0]}: {code} has no parent, so it is a root and its "
                        f"[policy] must set every field; missing: {', '.join(missing)}",
                    )
                    continue
                base: dict[str, Any] = {}
            elif parent in self.policies:
                base = dict(self.policies[parent])
            else:
                continue  # an ancestor's policy failed: reported there
            try:
                self.policies[code] = Policy.model_validate({**base, **overrides})
            except ValidationError as exc:
                for err in exc.errors():
                    message = _message("policy", err, POLICY_FIELDS)
                    inherited = "" if parent is None else f" (after inheriting from {parent})"
                    self.error(p, "policy", f"{message}{inherited}")

    # -- codes -------------------------------------------------------------

    def placed(self) -> Iterable[tuple[str, _Parsed]]:
        return self.files.items()

    def declare(self, kind: str, code: str, j: str, p: _Parsed, where: str) -> bool:
        key = (kind, code)
        if key in self.owner:
            self.error(
                p,
                code,
                f"{where}.code: {kind} {code} is already declared in {self.declared_in[key]}",
            )
            return False
        self.owner[key] = j
        self.declared_in[key] = p.name
        return True

    def declarations(self) -> None:
        for j, p in self.placed():
            for i, a in p.agencies:
                if not a.code.startswith(f"{j}-"):
                    self.error(
                        p,
                        a.code,
                        f"agencies[{i}].code: {a.code} must start with its jurisdiction's code "
                        f"({j}-...), so that every record shows whose agency reported it",
                    )
                self.declare("agency", a.code, j, p, f"agencies[{i}]")
            for i, m in p.measures:
                if self.declare("measure", m.code, j, p, f"measures[{i}]"):
                    self.measure_defs[m.code] = m
            for i, lst in p.lists:
                self.prefixed(p, j, lst.code, f"lists[{i}]")
                if self.declare("list", lst.code, j, p, f"lists[{i}]"):
                    self.list_defs[lst.code] = lst
            for i, r in p.rules:
                self.prefixed(p, j, r.code, f"rules[{i}]")
                key = ("rule", f"{r.code}@{r.version}")
                if key in self.owner:
                    self.error(
                        p,
                        r.code,
                        f"rules[{i}].version: version {r.version} of {r.code} is already "
                        f"declared in {self.declared_in[key]}",
                    )
                else:
                    self.owner[key] = j
                    self.declared_in[key] = p.name

    def prefixed(self, p: _Parsed, j: str, code: str, where: str) -> None:
        if not code.startswith(f"{j}."):
            self.error(
                p,
                code,
                f"{where}.code: {code} must start with its jurisdiction's code and a dot "
                f"({j}.), which keeps codes unique across catalogs",
            )

    def unknown(self, section: str, code: str) -> bool:
        return code not in self.broken.get(section, set())

    # -- rules -------------------------------------------------------------

    def check_rules(self) -> None:
        versions: dict[str, list[tuple[_Parsed, int, Rule]]] = {}
        for j, p in self.placed():
            for i, r in p.rules:
                versions.setdefault(r.code, []).append((p, i, r))
                self.rule_agencies(j, p, i, r)
                self.rule_list(j, p, i, r)
        for group in versions.values():
            self.rule_versions(sorted(group, key=lambda x: x[2].version))

    def rule_agencies(self, j: str, p: _Parsed, i: int, r: Rule) -> None:
        for code in r.agencies:
            owner = self.owner.get(("agency", code))
            if owner is None:
                if self.unknown("agencies", code):
                    self.error(
                        p,
                        r.code,
                        f"rules[{i}].agencies: unknown agency {code!r} (no catalog declares it)",
                    )
            elif j in self.rooted and owner in self.rooted and not self.within(owner, j):
                self.error(
                    p,
                    r.code,
                    f"rules[{i}].agencies: agency {code} belongs to {owner} and may not report "
                    f"a rule of {j}; an agency reports rules of its own jurisdiction or above it",
                )

    def rule_list(self, j: str, p: _Parsed, i: int, r: Rule) -> None:
        if r.places_on is None:
            return
        where = f"rules[{i}].places_on"
        owner = self.owner.get(("list", r.places_on))
        lst = self.list_defs.get(r.places_on)
        if owner is None or lst is None:
            if self.unknown("lists", r.places_on):
                self.error(p, r.code, f"{where}: unknown list {r.places_on!r}")
            return
        if j in self.rooted and not self.within(j, owner):
            self.error(
                p,
                r.code,
                f"{where}: list {r.places_on} belongs to {owner}, which is not {j} or above it",
            )
        if lst.entry != "rule":
            self.error(
                p,
                r.code,
                f'{where}: list {r.places_on} is entered by grade; only an entry = "rule" '
                "list can be entered by a rule",
            )
        wanted = ("red",) if r.is_reward else ("black", "watch")
        if lst.kind not in wanted:
            reason = "a reward rule" if r.is_reward else "an adverse rule"
            self.error(
                p,
                r.code,
                f"{where}: {reason} may not place on the {lst.kind} list {r.places_on}",
            )

    def rule_versions(self, group: Sequence[tuple[_Parsed, int, Rule]]) -> None:
        def span(r: Rule) -> str:
            end = r.effective_to.isoformat() if r.effective_to else "open end"
            return f"[{r.effective_from}, {end})"

        for n, (p, i, later) in enumerate(group):
            for _, _, earlier in group[:n]:
                if earlier.version == later.version:
                    continue  # a duplicate version: reported by declarations()
                if later.effective_from < earlier.effective_from:
                    self.error(
                        p,
                        later.code,
                        f"rules[{i}].effective_from: version {later.version} of {later.code} "
                        f"takes effect on {later.effective_from}, before version "
                        f"{earlier.version} ({earlier.effective_from}); versions must follow "
                        "each other in time",
                    )
                elif earlier.effective_to is None or later.effective_from < earlier.effective_to:
                    self.error(
                        p,
                        later.code,
                        f"rules[{i}].effective_from: versions {earlier.version} and "
                        f"{later.version} of {later.code} overlap: version {earlier.version} "
                        f"is in force {span(earlier)}, version {later.version} {span(later)}; "
                        "end the earlier one with effective_to (exclusive)",
                    )

    # -- lists -------------------------------------------------------------

    def check_lists(self) -> None:
        for j, p in self.placed():
            for i, lst in p.lists:
                for k, lm in enumerate(lst.measures):
                    self.list_measure(j, p, f"lists[{i}].measures[{k}].measure", lst, lm.measure)
                if lst.entry == "grade":
                    self.list_grades(j, p, i, lst)

    def list_measure(self, j: str, p: _Parsed, where: str, lst: ListDef, code: str) -> None:
        owner = self.owner.get(("measure", code))
        measure = self.measure_defs.get(code)
        if owner is None or measure is None:
            if self.unknown("measures", code):
                self.error(p, lst.code, f"{where}: unknown measure {code!r}")
            return
        if j in self.rooted and not self.within(j, owner):
            self.error(
                p,
                lst.code,
                f"{where}: measure {code} belongs to {owner}, which is not {j} or above it",
            )
        wanted = {"black": "deny", "red": "grant"}.get(lst.kind)
        if wanted is not None and measure.effect != wanted:
            self.error(
                p,
                lst.code,
                f"{where}: a {lst.kind} list may only use {wanted} measures; "
                f"{code} has effect {measure.effect!r}",
            )

    def list_grades(self, j: str, p: _Parsed, i: int, lst: ListDef) -> None:
        # The list is in force in every scheme below j, each with its own
        # bands: its grades must exist in all of them.
        for code in sorted(c for c in self.rooted if self.within(c, j)):
            policy = self.policies.get(code)
            if policy is None:
                continue
            missing = [g for g in lst.grades if g not in policy.grades]
            if missing:
                self.error(
                    p,
                    lst.code,
                    f"lists[{i}].grades: {', '.join(missing)} not a grade of {code}'s "
                    f"grade_bands ({', '.join(policy.grades)})",
                )


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------


def _finish(parsed: Sequence[_Parsed]) -> tuple[Registry | None, list[CatalogError]]:
    errors = [e for p in parsed for e in p.errors]
    if not parsed:
        errors.append(CatalogError("", "paths", "no catalog files to load"))
    errors += _Checker(parsed).run()
    if errors:
        return None, errors
    files = [f for p in parsed if (f := p.catalog_file()) is not None]
    return Registry(files), []


def build_registry(
    files: Iterable[tuple[str, CatalogFile]],
) -> tuple[Registry | None, list[CatalogError]]:
    """A registry from files already in memory, as ``(file name, CatalogFile)``.

    Runs the guard and every cross-file check, exactly like
    :func:`load_catalogs`; useful for what-if copies of a catalog.
    """
    parsed: list[_Parsed] = []
    for name, f in files:
        p = _Parsed(
            name,
            jurisdiction=f.jurisdiction,
            policy=f.policy,
            agencies=list(enumerate(f.agencies)),
            measures=list(enumerate(f.measures)),
            lists=list(enumerate(f.lists)),
            rules=list(enumerate(f.rules)),
        )
        p.errors += guard(f, name)
        parsed.append(p)
    return _finish(parsed)


def load_catalogs(paths: Iterable[Path]) -> tuple[Registry | None, list[CatalogError]]:
    """Load catalog files (a directory means every ``*.toml`` directly in it).

    Returns ``(registry, [])`` or ``(None, errors)`` with every error found
    across all files, each naming its file, where in it, and the field and
    the rule broken.
    """
    files: list[Path] = []
    missing: list[CatalogError] = []
    for path in paths:
        if path.is_dir():
            files += sorted(path.glob("*.toml"))
        elif path.is_file():
            files.append(path)
        else:
            missing.append(CatalogError(str(path), "file", "file: does not exist"))
    seen: set[Path] = set()
    parsed: list[_Parsed] = []
    for path in files:
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            missing.append(CatalogError(str(path), "file", f"file: cannot be read: {exc}"))
            continue
        parsed.append(_parse(text, str(path)))
    if not parsed:
        return None, missing or [CatalogError("", "paths", "no catalog files to load")]
    registry, errors = _finish(parsed)
    if missing:
        return None, missing + errors
    return registry, errors
