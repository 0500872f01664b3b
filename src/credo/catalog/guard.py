"""The guard: DESIGN principle 2, "no protected grounds", enforced at load.

A rule is refused when its category, English or Chinese title, or legal basis
mentions a protected ground. A measure is refused when it denies a basic
service or reaches anyone but the subject (``applies_to`` other than
``"subject"``, or a name about children, spouse or family):

>>> from datetime import date
>>> rule = Rule(code="CN-SD-RC.RELIGION", version=1,
...     title_en="Spreading religion illegally", title_zh="非法传教",
...     category="public-order", points=-10, legal_basis="(illustrative)",
...     agencies=("CN-SD-RC-PSB",), severity="minor", rectifiable=True,
...     effective_from=date(2015, 1, 1))
>>> [(e.location, e.ground) for e in guard_rule(rule, "cn-sd-rc.toml")]
[('CN-SD-RC.RELIGION', 'religion')]

The keyword lists are deliberately conservative: a title that merely
*mentions* a ground ("vandalism at a church") is refused too, because a rule
does not need to name a church to punish vandalism. When a legitimate rule is
refused, reword the rule in its catalog (name the act, not the place, person
or belief); do not add an exception here. A keyword that misfires on ordinary
legal wording belongs in the word-boundary or negative patterns below, with a
test in ``tests/catalog/test_catalog_guard.py``.

English keywords match on word boundaries so that ``agency``, ``damage``,
``passage`` and ``postage`` are not ``age`` or ``post``; Chinese has no word
boundaries, so Chinese keywords are specific compounds (``游戏``, ``性别``),
never single characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from credo.catalog.errors import CatalogError
from credo.catalog.models import CatalogFile, Measure, Rule


@dataclass(frozen=True)
class Ground:
    """A protected ground: an id (for code and tests), a label and its keywords."""

    id: str
    label: str
    english: tuple[str, ...]
    chinese: tuple[str, ...]

    def pattern(self) -> re.Pattern[str]:
        # English keywords are regex fragments (for optional suffixes and
        # "good faith"-style exclusions) wrapped in word boundaries.
        parts = [rf"\b(?:{kw})\b" for kw in self.english]
        parts += [re.escape(kw) for kw in self.chinese]
        return re.compile("|".join(parts), re.IGNORECASE)


#: Grounds a rule must never score (DESIGN principle 2), plus the traits that
#: a resident identity number reveals (REFERENCE.md: birthplace, birth date, sex).
RULE_GROUNDS: tuple[Ground, ...] = (
    Ground(
        "religion",
        "religion or belief",
        (
            r"religions?",
            r"religious",
            r"(?<!good )(?<!bad )faiths?",  # "good faith" is contract law, not belief
            r"worship(?:s|ping|ped)?",
            r"beliefs?",
            r"believers?",
            r"church(?:es)?",
            r"mosques?",
            r"prayers?",
            r"prosely\w*",
            r"missionar\w*",
            r"cults?",
            r"atheis\w*",
        ),
        ("宗教", "信仰", "信教", "传教", "礼拜", "教会", "寺庙", "清真寺", "邪教"),
    ),
    Ground(
        "political-opinion",
        "political opinion",
        (
            r"politic\w*",
            r"dissen\w*",
            r"dissident\w*",
            r"ideolog\w*",
            r"party membership",
        ),
        ("政治", "政见", "异见", "党籍", "意识形态"),
    ),
    Ground(
        "expression",
        "expression or press",
        (
            r"defam\w*",
            r"slander\w*",
            r"libel\w*",
            r"rumou?rs?",
            r"fake news",
            r"online speech",
            r"speech",
            r"post(?:s|ed|ing)?",
            r"blog\w*",
            r"social media",
            r"weibo",
            r"wechat moments",
            r"press",
            r"journalis\w*",
            r"censor\w*",
            r"criticis\w*",
        ),
        ("谣言", "诽谤", "言论", "发帖", "转发", "网络谣言", "新闻", "记者", "虚假信息", "批评"),
    ),
    Ground(
        "assembly",
        "assembly or association",
        (
            r"protest\w*",
            r"petition\w*",
            r"assembl(?:y|ies|ing)",
            r"demonstrat(?:ion|ions|ing|or|ors)",
            r"rall(?:y|ies)",
            r"association",
            r"trade unions?",
            r"labou?r unions?",
        ),
        ("集会", "游行", "示威", "上访", "信访", "结社", "社团", "工会"),
    ),
    Ground(
        "ethnicity",
        "ethnicity or origin",
        (
            r"ethnic\w*",
            r"race",
            r"racial\w*",
            r"minorit(?:y|ies) nationalit(?:y|ies)",
            r"national origin",
            r"ethnic origin",
            r"hukou",
            r"household registration",
            r"uy?ghurs?",
            r"tibetans?",
        ),
        ("民族", "种族", "户籍", "户口", "维吾尔", "藏族"),
    ),
    Ground(
        "health",
        "health",
        (
            r"health\w*",
            r"ill(?:ness|nesses)",
            r"diseases?",
            r"sick\w*",
            # not bare "medical": "defrauding medical insurance" is fraud, not health
            r"medical (?:conditions?|history|records?)",
            r"diagnos\w*",
            r"hiv",
            r"hepatitis",
            r"disabilit(?:y|ies)",
            r"disabled",
            r"mental",
            r"pregnan\w*",
        ),
        ("健康", "疾病", "患病", "病史", "病情", "残疾", "艾滋", "乙肝", "传染病", "精神病", "怀孕"),
    ),
    Ground(
        "sexual-orientation",
        "sexual orientation",
        (
            r"sexual orientation",
            r"homosexual\w*",
            r"bisexual\w*",
            r"gay",
            r"lesbian\w*",
            r"lgbt\w*",
            r"transgender\w*",
        ),
        ("性取向", "同性恋", "跨性别", "性少数"),
    ),
    Ground(
        "private-life",
        "private life",
        (
            r"private life",
            r"video ?games?",
            r"online games?",
            r"gaming",
            r"dating",
            r"divorc\w*",
            r"extramarital",
            r"love affairs?",
            r"personal relationships?",
            r"shopping habits?",
        ),
        ("私生活", "游戏", "网游", "恋爱", "离婚", "婚外", "购物习惯"),
    ),
    Ground(
        "identity-traits",
        "identity-number-derived traits (birthplace, sex, age)",
        (
            r"birthplace",
            r"place of birth",
            r"native place",
            r"birth ?dates?",
            r"dates? of birth",
            r"birthdays?",
            r"sex",
            r"genders?",
            r"age",
            r"ages",
            r"aged",
        ),
        ("籍贯", "出生地", "性别", "年龄", "出生日期", "生日"),
    ),
)

#: A measure may not deny these: they are what a person needs to live, so no
#: score may take them away (DESIGN principle 2).
BASIC_SERVICE = Ground(
    "basic-service",
    "basic service (health care, schooling, water, power, social assistance)",
    (
        r"health[- ]?care",
        r"health\w*",
        r"hospitals?",
        r"clinics?",
        r"medical",
        r"medicines?",
        r"schools?",
        r"schooling",
        r"education\w*",
        r"kindergartens?",
        r"enrol(?:l?ment|ling|led)?",
        r"water",
        r"electricity",
        r"power",
        r"heating",
        r"social[- ]assistance",
        r"social[- ]security",
        r"welfare",
        r"pensions?",
        r"dibao",
    ),
    (
        "医疗",
        "医院",
        "就医",
        "看病",
        "教育",
        "学校",
        "入学",
        "上学",
        "供水",
        "用水",
        "供电",
        "用电",
        "供暖",
        "社会救助",
        "低保",
        "社保",
        "养老金",
    ),
)

#: A measure reaches only its subject: never a child, spouse or relative.
FAMILY = Ground(
    "family",
    "the subject's family",
    (
        r"child\w*",
        r"sons?",
        r"daughters?",
        r"famil(?:y|ies)",
        r"spouses?",
        r"relatives?",
        r"parents?",
        r"dependants?",
        r"dependents?",
    ),
    ("子女", "孩子", "家属", "家庭", "配偶", "亲属", "父母", "近亲属"),
)

GROUNDS: Mapping[str, Ground] = {g.id: g for g in (*RULE_GROUNDS, BASIC_SERVICE, FAMILY)}

_PATTERNS: dict[str, re.Pattern[str]] = {g.id: g.pattern() for g in GROUNDS.values()}

_RULE_FIELDS = ("category", "title_en", "title_zh", "legal_basis")
_MEASURE_FIELDS = ("code", "sector", "name_en", "name_zh")


def scan(text: str, grounds: Iterable[Ground] = RULE_GROUNDS) -> list[tuple[Ground, str]]:
    """The grounds ``text`` mentions, each with the first words that matched.

    >>> [(g.id, hit) for g, hit in scan("Circulating fake news; 网络谣言")]
    [('expression', 'fake news')]
    >>> scan("a government agency assessed the damage to the passage")
    []
    """
    found: list[tuple[Ground, str]] = []
    for ground in grounds:
        match = _PATTERNS[ground.id].search(text)
        if match:
            found.append((ground, match.group(0)))
    return found


def _refuse(
    fields: Mapping[str, object],
    grounds: tuple[Ground, ...],
    *,
    file_name: str,
    location: str,
    what: str,
    verb: str = "scores a protected ground",
) -> list[CatalogError]:
    errors: list[CatalogError] = []
    refused: set[str] = set()
    for field, value in fields.items():
        if not isinstance(value, str):
            continue
        for ground, hit in scan(value, grounds):
            if ground.id in refused:
                continue  # one error per ground and item is enough to act on
            refused.add(ground.id)
            errors.append(
                CatalogError(
                    file=file_name,
                    location=location,
                    message=(
                        f"{field}: {what} {location} {verb}, {ground.label} "
                        f"({hit!r} in {value!r}); refused by the guard"
                    ),
                    ground=ground.id,
                )
            )
    return errors


def guard_rule_fields(fields: Mapping[str, object], file_name: str, location: str) -> list[CatalogError]:
    """Guard a rule's raw fields; the loader uses it for rules that failed validation.

    A rule with ``category = "religion"`` fails the closed vocabulary *and*
    is refused by the guard: the author should learn both.
    """
    return _refuse(
        {k: fields.get(k) for k in _RULE_FIELDS},
        RULE_GROUNDS,
        file_name=file_name,
        location=location,
        what="rule",
    )


def guard_rule(rule: Rule, file_name: str) -> list[CatalogError]:
    """Errors for a rule that scores a protected ground (empty when it is fine)."""
    return guard_rule_fields(rule.model_dump(include=set(_RULE_FIELDS)), file_name, rule.code)


def guard_measure_fields(fields: Mapping[str, object], file_name: str, location: str) -> list[CatalogError]:
    """Guard a measure's raw fields: basic services, family, protected grounds."""
    text = {k: fields.get(k) for k in _MEASURE_FIELDS}
    # Both effects: a basic service *granted* as a reward is one withheld from
    # everyone else (priority hospital places for grade AAA), so it is refused too.
    errors = _refuse(
        text,
        (BASIC_SERVICE,),
        file_name=file_name,
        location=location,
        what="measure",
        verb="reaches a basic service, which no score may ration",
    )
    applies_to = fields.get("applies_to", "subject")
    if applies_to != "subject":
        errors.append(
            CatalogError(
                file=file_name,
                location=location,
                message=(
                    f"applies_to: measure {location} applies to {applies_to!r}, not the "
                    'subject; a measure may only reach its subject (applies_to = "subject"), '
                    "refused by the guard"
                ),
                ground=FAMILY.id,
            )
        )
    else:
        errors += _refuse(
            text,
            (FAMILY,),
            file_name=file_name,
            location=location,
            what="measure",
            verb="reaches someone other than its subject",
        )
    errors += _refuse(
        text,
        RULE_GROUNDS,
        file_name=file_name,
        location=location,
        what="measure",
        verb="touches a protected ground",
    )
    return errors


def guard_measure(measure: Measure, file_name: str) -> list[CatalogError]:
    """Errors for a measure that denies a basic service or reaches family."""
    return guard_measure_fields(measure.model_dump(), file_name, measure.code)


def guard_parts(rules: Iterable[Rule], measures: Iterable[Measure], file_name: str) -> list[CatalogError]:
    """The guard over a file's valid rules and measures, when there is no whole file."""
    errors: list[CatalogError] = []
    for rule in rules:
        errors += guard_rule(rule, file_name)
    for measure in measures:
        errors += guard_measure(measure, file_name)
    return errors


def guard(catalog_file: CatalogFile, file_name: str) -> list[CatalogError]:
    """Every guard error in one catalog file, rules first, in file order."""
    return guard_parts(catalog_file.rules, catalog_file.measures, file_name)
