"""The check index: who is listed for which measure today, as flat arrays.

A relying party's question "may subject s use measure m today?" is answered
from memory, never by a query. The index is a *snapshot* (every subject on
an enforceable listing and the measures it carries) plus a small *overlay*
of the subjects whose listings changed since the snapshot was built.

The snapshot is a handful of numpy arrays, so that several server workers
can map one file into memory and share its pages (``lists/snapshots.py``):

- ``table``: a cuckoo hash table of 64-bit keys, buckets of 4 slots, each key
  in one of two buckets, 90 % full (8.9 bytes per listed subject). A
  person's key is exact: the 17 digits of the resident identity number (the
  check character follows from them). Organisations and foreign subjects
  get a keyed 63-bit hash with the top bit set, and a hit on one is
  confirmed against the stored identifier (``others_pos``/``others_ids``),
  so a hash collision can never deny anyone. Keys are multiplied by an odd
  constant (a bijection: still exact) before their buckets are taken.
- ``bits``: one bitset per measure over the table's slots
  (20 million listed subjects: 2.6 MiB per measure).

A manifest of canonical persons (as the API parses it) is looked up by
``_probe.c``: each text read once into its key, the buckets of the subjects
a few places ahead prefetched while the current one is compared. Any other
manifest is decided in a few numpy calls whatever its length: its texts
become keys in one matrix product, both buckets of every key are read in
one ``take`` and compared at once. Either way only the hits look at
measure bits.

Decisions are as they always were: ``denied`` (or ``granted`` for a reward
measure) when an enforceable listing of the subject carries the measure,
else ``allowed``.

>>> idx = CheckIndex.from_members({"air-travel": "deny"}, {"air-travel": ["person:11010519491231002X"]})
>>> idx.decide("air-travel", "person:11010519491231002X"), idx.decide("air-travel", "person:Y")
('denied', 'allowed')
"""

from __future__ import annotations

import hashlib
import operator
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property

import numpy as np
import numpy.typing as npt

from credo.lists._probe import probe

DECISIONS = ("allowed", "denied", "granted")

U64 = npt.NDArray[np.uint64]
PERSON = "person:"
_PERSON_LEN = len(PERSON) + 18
_PREFIX = np.frombuffer(PERSON.encode(), np.uint8)
_POW10 = 10 ** np.arange(16, -1, -1, dtype=np.int64)
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_W17 = np.array(_WEIGHTS, np.int64)
_ZERO_SUM = 48 * sum(_WEIGHTS)  # what the ASCII codes of the digits add to the weighted sum
# Fibonacci hashing: an odd multiplier is a bijection on 64-bit numbers, and
# the product's top bits spread structured keys (regions, birth dates) evenly.
MULTIPLIER = 0x9E3779B97F4A7C15
_MULT = np.uint64(MULTIPLIER)
_MASK64 = (1 << 64) - 1
_HASHED = 1 << 63


def _check_value(digits: str) -> int:
    """GB 11643's MOD 11-2 check of 17 ASCII digits (10 stands for X)."""
    total: int = sum(map(operator.mul, digits.encode(), _WEIGHTS))
    return (12 - (total - _ZERO_SUM) % 11) % 11


def _person_key(identifier: str) -> int | None:
    """The 17 digits of a resident identity number whose check character is right, else None.

    (The check character follows from the digits, so they alone name the person.)
    """
    body = identifier[:17]
    if len(identifier) != 18 or not body.isdigit() or not body.isascii():
        return None
    if "0123456789X"[_check_value(body)] != identifier[17]:
        return None
    return int(body) or None  # 0 marks an empty slot: such a text takes the hashed path


def _hashed_key(subject: str, secret: bytes) -> int:
    digest = hashlib.blake2b(subject.encode(), digest_size=8, key=secret).digest()
    return _HASHED | (int.from_bytes(digest, "little") & (_HASHED - 1))


def subject_key(subject: str, secret: bytes, *, canonical: bool = False) -> int:
    """The index key of a subject text (``kind:identifier``); ``canonical``: as
    ``parse_subject_ref`` gave it (a person's check character is then right)."""
    if subject.startswith(PERSON):
        if canonical and len(subject) == _PERSON_LEN:
            return int(subject[7:24])
        key = _person_key(subject[len(PERSON) :])
        if key is not None:
            return key
    return _hashed_key(subject, secret)


# Per column of a person's text: the lowest byte allowed and how far above it
# ("person:" exactly, then 17 digits); the check character goes through _CHECK.
_LOW = np.frombuffer(PERSON.encode() + b"0" * 17, np.uint8)
_SPAN = np.array([0] * 7 + [9] * 17, np.uint8)
# chars @ _POW10 on ASCII digits adds 48 * 111...1 to the number they spell.
_DIGIT_ZERO = np.uint64(48 * int(_POW10.sum()))
_CHECK = np.full(256, -1, np.int64)
_CHECK[np.frombuffer(b"0123456789X", np.uint8)] = np.arange(11)
_PERSON_COLUMNS = slice(0, _PERSON_LEN)  # a person's text; the NUL after it is not read


def _joined(subjects: Sequence[str]) -> bytes | None:
    """The texts, ASCII, joined with NUL between them, when that is 26 bytes a text less one
    (a NUL after the last is never read: appending it would copy the manifest's bytes a
    second time); else None."""
    try:
        raw = "\0".join(subjects).encode("ascii")
    except UnicodeEncodeError:
        return None
    return raw if len(raw) == (_PERSON_LEN + 1) * len(subjects) - 1 else None


def _rows(raw: bytes, columns: slice) -> npt.NDArray[np.uint8]:
    """``columns`` of each 26-byte row of ``_joined``'s bytes, viewed where they are."""
    rows = (len(raw) + 1) // (_PERSON_LEN + 1)
    return np.ndarray(
        (rows, columns.stop - columns.start), np.uint8, raw, columns.start, (_PERSON_LEN + 1, 1)
    )


def _person_keys(subjects: Sequence[str], canonical: bool) -> U64 | None:
    """Keys of a manifest of persons in a few vectorised steps; None when any is not one.

    The texts are joined with NUL between them (``_joined``), and each row of 26 bytes must be
    one subject. Checked (``canonical`` False): a row with the prefix, 17 digits and their
    check character contains no NUL, so when every row is one, each NUL is the 26th
    byte of a row. ``canonical`` (texts as ``parse_subject_ref`` gives them): only a
    person's text starts with "p" and it has 25 characters, so when every row starts
    with "p", row by row each is a person's text.
    """
    raw = _joined(subjects)
    if raw is None:
        return None
    chars = _rows(raw, _PERSON_COLUMNS)
    if canonical:
        if not (chars[:, 0] == _PREFIX[0]).all():
            return None
        return (chars[:, 7:24] @ _POW10).view(np.uint64) - _DIGIT_ZERO
    values = chars[:, :24] - _LOW  # wraps below the lowest byte, so one bound checks both sides
    if (values > _SPAN).any():
        return None
    digits = values[:, 7:]
    if (_CHECK.take(chars[:, 24]) != (12 - (digits @ _W17) % 11) % 11).any():
        return None
    keys = digits @ _POW10
    return None if keys.min() == 0 else keys.view(np.uint64)


def _weights_of_hashed_key() -> U64:
    """Weights of bytes 6 to 23 of a canonical person's row (":", then the 17 digits) whose
    sum, modulo 2**64, is the hashed key (``hashed``) of its digits.

    The key is linear in the bytes: each digit's ASCII code times 10**k, less 48 times the
    same; times MULTIPLIER, still linear modulo 2**64. So digit k weighs 10**k * MULTIPLIER,
    and the constant (48 per digit, so even) is carried by the first column, which is always
    ":" (58 = 2 * 29: its weight solves 29 * w = -constant / 2 modulo 2**63). The rest of
    the row ("perso" before, the check character and NUL after) weighs nothing and is not read.
    """
    weights = [(10 ** (16 - i) * MULTIPLIER) & _MASK64 for i in range(17)]
    half = (-48 * sum(weights) // 2) % (1 << 63)
    colon = (half * pow(ord(":") // 2, -1, 1 << 63)) & _MASK64
    return np.array([colon, *weights], np.uint64)


_HASH_WEIGHTS = _weights_of_hashed_key()
_HASH_COLUMNS = slice(6, 24)


def canonical_person_hashes(subjects: Sequence[str]) -> U64 | None:
    """``hashed(subject_keys(subjects, ..., canonical=True))`` in one matrix product when every
    text is a canonical person's (as ``parse_subject_ref`` gives them), else None.

    The texts are joined with NUL between them (``_joined``); when the total is 26 bytes a
    text and every row starts with "p" (only a person's canonical text does, and it has 25
    characters), row by row each is a person's text.
    """
    raw = _joined(subjects)
    if raw is None or raw[:: _PERSON_LEN + 1] != b"p" * len(subjects):
        return None
    return _rows(raw, _HASH_COLUMNS) @ _HASH_WEIGHTS


def subject_keys(subjects: Sequence[str], secret: bytes, *, canonical: bool = False) -> U64:
    """Keys of many subjects: vectorised when all are persons, else one by one."""
    if not subjects:
        return np.empty(0, np.uint64)
    keys = _person_keys(subjects, canonical)
    if keys is not None:
        return keys
    keys = np.empty(len(subjects), np.uint64)
    persons = [i for i, s in enumerate(subjects) if s.startswith(PERSON)]
    found = _person_keys([subjects[i] for i in persons], canonical) if len(persons) > 8 else None
    if found is not None:  # mostly persons: them at once, the others one by one
        keys[persons] = found
        rest = set(range(len(subjects))).difference(persons)
    else:
        rest = set(range(len(subjects)))
    for i in rest:
        keys[i] = subject_key(subjects[i], secret, canonical=canonical)
    return keys


def hashed(keys: U64) -> U64:
    return keys * _MULT


FILTER_BITS = 20  # the overlay's filter: 1 MiB, ~0.6 % of subjects let through at 50,000 changed
_FILTER_SHIFT = np.uint64(64 - FILTER_BITS)
_FLAG_SHIFT = np.uint64(64 - FILTER_BITS - 3)  # the next 3 bits choose one of a cell's 8 flags
_FLAG_BITS = np.array([1 << i for i in range(8)], np.uint8)
_SEVEN = np.uint64(7)
SLOTS = 4  # keys per bucket: a look-up reads two buckets of 32 bytes
_32 = np.int64(32)
LOAD = 0.9  # filled slots / slots: 8.9 bytes per listed subject


# A subject's 2 * SLOTS comparisons (bools, one byte each) read as one little-endian word.
_SLOT_FLAGS = np.dtype(f"<u{2 * SLOTS}")


def _overlay_cells(h: U64) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    """The overlay filter's byte for each hashed key (its top FILTER_BITS bits) and the flag
    in it (a bit chosen by the next 3). In int64, which ``take`` uses without a cast."""
    flags = _FLAG_BITS.take(((h >> _FLAG_SHIFT) & _SEVEN).view(np.int64))
    return (h >> _FILTER_SHIFT).view(np.int64), flags


def buckets(h: U64, count: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """A hashed key's two candidate buckets: from its high and from its low 32 bits."""
    pairs = candidates(h, count).reshape(-1, 2)
    return pairs[:, 1], pairs[:, 0]


def candidates(h: U64, count: int) -> npt.NDArray[np.int64]:
    """Both buckets of each hashed key, interleaved (low-bits bucket, high-bits bucket):
    each 32-bit half times ``count``, divided by 2**32 (a multiply-shift range reduction).
    In int64 (a bucket count below 2**31 leaves room), which ``take`` uses without a cast."""
    both = h.view(np.uint32) * np.int64(count)
    both >>= _32  # in place, by a numpy scalar: a Python 32 costs a conversion each call
    return both


def _cuckoo(h: U64, count: int, rng: np.random.Generator, rounds: int = 1000) -> npt.NDArray[np.int64] | None:
    """Slots (bucket * SLOTS + j) for distinct non-zero hashed keys ``h`` in ``count`` buckets
    of two choices each, or None if ``rounds`` do not place them all.

    Vectorised cuckoo hashing: each round places every waiting key in a free slot of
    its target bucket; in each bucket still full, the first key waiting evicts a
    random resident, which then waits for its other bucket (as do the keys behind).
    """
    n = len(h)
    b1, b2 = buckets(h, count)
    choices = np.stack([b1, b2])
    occupant = np.full(count * SLOTS, -1, np.int64)
    fill = np.zeros(count, np.int64)
    waiting = np.arange(n)
    target = choices[0].copy()
    for _ in range(rounds):
        t = target[waiting]
        order = np.argsort(t, kind="stable")
        t, rows = t[order], waiting[order]
        rank = np.arange(len(t)) - np.searchsorted(t, t)
        j = fill[t] + rank
        ok = j < SLOTS
        occupant[t[ok] * SLOTS + j[ok]] = rows[ok]
        np.add.at(fill, t[ok], 1)
        rows, t, rank = rows[~ok], t[~ok], rank[~ok]
        if not len(rows):
            slot = np.empty(n, np.int64)
            taken = np.flatnonzero(occupant >= 0)
            slot[occupant[taken]] = taken
            return slot
        lead = rank == 0
        evicted = t[lead] * SLOTS + rng.integers(0, SLOTS, int(lead.sum()))
        victims = occupant[evicted]
        occupant[evicted] = rows[lead]
        waiting = np.concatenate([victims, rows[~lead]])
        now = np.concatenate([t[lead], t[~lead]])
        target[waiting] = np.where(choices[0, waiting] == now, choices[1, waiting], choices[0, waiting])
    return None


@dataclass(frozen=True)
class Snapshot:
    """The listed subjects and their measures on one day, as arrays (possibly file-mapped)."""

    measures: tuple[str, ...]
    table: U64  # (buckets, SLOTS): hashed keys, 0 for an empty slot
    size: int  # listed subjects
    bits: npt.NDArray[np.uint8]  # (measures, slots / 8): bit s of row m: measure m applies at slot s
    others_pos: npt.NDArray[np.int64]  # sorted slots of subjects that are not persons
    others_ids: npt.NDArray[np.bytes_]  # their canonical texts, in the same order
    secret: bytes
    built_on: date | None = None
    version: int = 0  # the last list change the snapshot includes
    gaps: tuple[int, ...] = ()  # change ids below ``version`` not yet committed when it was built
    path: str | None = None  # where it is mapped from; None: in this process's memory

    @classmethod
    def build(
        cls,
        members: Mapping[str, Iterable[str]],
        *,
        built_on: date | None = None,
        version: int = 0,
        gaps: Iterable[int] = (),
    ) -> Snapshot:
        """``members``: measure -> canonical subject texts for which it applies today."""
        per_measure = {m: set(subjects) for m, subjects in members.items()}
        listed = sorted(set().union(*per_measure.values())) if per_measure else []
        while True:  # a new secret in the (2**-63-ish) case two listed identifiers share a hash
            secret = secrets.token_bytes(16)
            keys = subject_keys(listed, secret)
            if len(np.unique(keys)) == len(keys):
                break
        index_of = {s: i for i, s in enumerate(listed)}
        return cls.from_keys(
            keys,
            {m: np.fromiter(map(index_of.__getitem__, subs), np.int64) for m, subs in per_measure.items()},
            {i: listed[i] for i in np.flatnonzero(keys >= np.uint64(_HASHED)).tolist()},
            secret,
            built_on=built_on,
            version=version,
            gaps=gaps,
        )

    @classmethod
    def from_keys(
        cls,
        keys: U64,
        member_rows: Mapping[str, npt.NDArray[np.int64]],
        others: Mapping[int, str],
        secret: bytes,
        *,
        built_on: date | None = None,
        version: int = 0,
        gaps: Iterable[int] = (),
    ) -> Snapshot:
        """From distinct non-zero keys (``subject_keys``), each measure's rows of ``keys``,
        and the subject text of every row whose key is hashed (not a person's)."""
        n = len(keys)
        h = hashed(keys)
        rng = np.random.default_rng(n)
        count = max(1, int(np.ceil(n / (SLOTS * LOAD))))
        while (slot := _cuckoo(h, count, rng)) is None:
            count = int(count * 1.05) + 1
        table = np.zeros(count * SLOTS, np.uint64)
        table[slot] = h
        measures = tuple(sorted(member_rows))
        bits = np.zeros((len(measures), (count * SLOTS + 7) // 8), np.uint8)
        for row, m in enumerate(measures):
            mask = np.zeros(bits.shape[1] * 8, bool)
            mask[slot[member_rows[m]]] = True
            bits[row] = np.packbits(mask, bitorder="little")
        rows = np.fromiter(others, np.int64, len(others))
        by_slot = np.argsort(slot[rows])
        ids = [others[r].encode() for r in rows[by_slot].tolist()]
        return cls(
            measures=measures,
            table=table.reshape(count, SLOTS),
            size=n,
            bits=bits,
            others_pos=slot[rows][by_slot],
            others_ids=np.array(ids, dtype=f"S{max([1, *map(len, ids)])}"),
            secret=secret,
            built_on=built_on,
            version=version,
            gaps=tuple(sorted(gaps)),
        )

    # -- look-ups ---------------------------------------------------------------

    def _confirmed(self, subject: str, slot: int) -> bool:
        at = int(np.searchsorted(self.others_pos, slot))
        return (
            at < len(self.others_pos)
            and int(self.others_pos[at]) == slot
            and (self.others_ids[at] == subject.encode())
        )

    def positions(
        self, subjects: Sequence[str], keys: U64 | None = None, h: U64 | None = None
    ) -> tuple[list[int], list[int]]:
        """(rows, slots): which of ``subjects`` are in the snapshot, and in which slot
        (``keys``: their ``subject_keys``, ``h``: those ``hashed``, when known)."""
        n = len(subjects)
        if self.size == 0 or not n:
            return [], []
        if keys is None:
            keys = subject_keys(subjects, self.secret)
        return self.matches(subjects, hashed(keys) if h is None else h, keys)

    def matches(self, subjects: Sequence[str], h: U64, keys: U64 | None) -> tuple[list[int], list[int]]:
        """``positions`` from the hashed keys ``h``; ``keys`` None: every subject is a canonical
        person (``canonical_person_hashes``), whose key is exact and never 0."""
        both = candidates(h, len(self.table))
        # Both buckets of each key side by side: row r holds its 2 * SLOTS slots' keys, and
        # their comparisons (a byte each) are read as one word a subject (byte j: slot j),
        # non-zero where it is found: one hit a subject, whose slot the word tells.
        equal = self.table.take(both, axis=0).reshape(len(h), 2 * SLOTS) == h[:, None]
        found = equal.view(_SLOT_FLAGS).ravel()
        rows: list[int] = []
        slots: list[int] = []
        flags, bucket, hashed_key = found.item, both.item, h.item  # Python ints, no numpy scalar each
        for row in found.nonzero()[0].tolist():  # few: only listed subjects (and a key of 0)
            # The last slot found: a key is in one slot, seen twice when its buckets are one;
            # a key of 0 (skipped below) matches every empty slot.
            j = (flags(row).bit_length() - 1) >> 3
            slot = bucket(2 * row + j // SLOTS) * SLOTS + j % SLOTS
            if keys is None:
                if not hashed_key(row):
                    continue
            else:
                key = keys.item(row)
                if key == 0 or (key >= _HASHED and not self._confirmed(subjects[row], slot)):
                    continue
            rows.append(row)
            slots.append(slot)
        return rows, slots

    def position(self, subject: str, *, canonical: bool = False) -> int:
        """The slot of one subject, or -1: the scalar path of a single check."""
        if self.size == 0:
            return -1
        key = subject_key(subject, self.secret, canonical=canonical)
        h = (key * MULTIPLIER) & _MASK64
        if h == 0:
            return -1
        count = len(self.table)
        for bucket in (((h & 0xFFFFFFFF) * count) >> 32, ((h >> 32) * count) >> 32):
            row: list[int] = self.table[bucket].tolist()
            if h in row:
                slot = bucket * SLOTS + row.index(h)
                if key >= _HASHED and not self._confirmed(subject, slot):
                    return -1
                return slot
        return -1

    def measures_of(self, subject: str, *, canonical: bool = False) -> frozenset[str]:
        slot = self.position(subject, canonical=canonical)
        if slot < 0:
            return frozenset()
        column = self.bits[:, slot >> 3].tolist()
        return frozenset(m for m, byte in zip(self.measures, column, strict=True) if (byte >> (slot & 7)) & 1)

    def nbytes(self) -> dict[str, int]:
        return {
            "table": int(self.table.nbytes),
            "bits_per_measure": int(self.bits.shape[1]),
            "others": int(self.others_pos.nbytes + self.others_ids.nbytes),
        }


def empty_snapshot(measures: Iterable[str] = ()) -> Snapshot:
    return Snapshot.build({m: () for m in measures}, version=-1)


@dataclass(frozen=True)
class CheckIndex:
    """A snapshot and the overlay of subjects changed since: what checks are answered from."""

    effects: Mapping[str, str]  # measure -> deny | grant
    snapshot: Snapshot = field(default_factory=empty_snapshot)
    # Subject -> the measures that apply to it today, for every subject whose
    # listings changed since the snapshot: this answer replaces the snapshot's.
    overlay: Mapping[str, frozenset[str]] = field(default_factory=dict)
    version: int = 0  # the last list change applied (snapshot or overlay)
    built_on: date | None = None
    # A byte per value of a hashed key's top FILTER_BITS bits, whose 8 flags stand for the
    # values of the next 3 bits (``_overlay_cells``), set for the overlay's subjects: a manifest
    # looks up in the overlay only the few subjects whose flag is set. (A byte array, not one
    # bitset: a take a manifest, where bits took five numpy calls. 8 flags a byte, not one:
    # 8 times fewer subjects let through, each a dict lookup of ~0.3 us, for 3 numpy calls more.)
    overlay_filter: npt.NDArray[np.uint8] | None = None

    @classmethod
    def from_members(
        cls,
        effects: Mapping[str, str],
        members: Mapping[str, Iterable[str]],
        *,
        built_on: date | None = None,
        version: int = 0,
    ) -> CheckIndex:
        """An index of ``members`` (measure -> canonical subject texts listed for it)."""
        snapshot = Snapshot.build(
            {m: members.get(m, ()) for m in {*effects, *members}}, built_on=built_on, version=version
        )
        return cls(effects=dict(effects), snapshot=snapshot, version=version, built_on=built_on)

    def with_overlay(self, changes: Mapping[str, frozenset[str]], version: int) -> CheckIndex:
        """A new index with ``changes`` (subject -> measures that now apply) laid over this one's."""
        marks = (
            np.zeros(1 << FILTER_BITS, np.uint8)
            if self.overlay_filter is None
            else self.overlay_filter.copy()
        )
        cells, flags = _overlay_cells(hashed(subject_keys(list(changes), self.snapshot.secret)))
        np.bitwise_or.at(marks, cells, flags)  # (.at: two subjects may share a cell)
        return CheckIndex(
            self.effects,
            self.snapshot,
            {**self.overlay, **changes},
            version,
            self.built_on,
            overlay_filter=marks,
        )

    @cached_property
    def _listed(self) -> dict[str, tuple[memoryview, str]]:
        """Measure -> its bits in the snapshot and the decision when one is set, for each
        measure whose listing decides anything (a measure without an effect is allowed):
        a manifest's hits read a byte of a memoryview and a decision made once per index."""
        snap = self.snapshot
        return {
            m: (memoryview(snap.bits[i]), self._decision(m, True))
            for i, m in enumerate(snap.measures)
            if self._decision(m, True) != "allowed"
        }

    def _decision(self, measure: str, applies: bool) -> str:
        effect = self.effects.get(measure)
        if not applies or effect is None:
            return "allowed"
        return "denied" if effect == "deny" else "granted"

    def decide(self, measure: str, subject: str, *, canonical: bool = False) -> str:
        """``denied``/``granted`` when an enforceable listing applies, else ``allowed``."""
        if measure not in self.effects:
            return "allowed"
        changed = self.overlay.get(subject)
        if changed is not None:
            return self._decision(measure, measure in changed)
        return self._decision(measure, measure in self.snapshot.measures_of(subject, canonical=canonical))

    def decide_many(
        self, subjects: Sequence[str], measures: Sequence[str], *, canonical: bool = False
    ) -> list[str]:
        """The decision for each (subject, measure) pair, the whole manifest at once.

        ``canonical``: every subject is a text ``parse_subject_ref`` gave (saves checks).
        """
        n = len(subjects)
        if n <= 2:
            return [self.decide(m, s, canonical=canonical) for s, m in zip(subjects, measures, strict=True)]
        out = ["allowed"] * n
        snap = self.snapshot
        # canonical persons (a manifest as the API parses it): the compiled look-up
        probed = None
        if canonical and type(subjects) is list:
            probed = probe(subjects, snap.table, self.overlay_filter)
        if probed is not None:
            rows, slots, marked = probed
        else:
            rows, slots, marked = self._numpy_probe(subjects, canonical)
        if rows:
            listed = self._listed
            for r, slot in zip(rows, slots, strict=True):
                found = listed.get(measures[r])
                if found is not None and (found[0][slot >> 3] >> (slot & 7)) & 1:
                    out[r] = found[1]
        for r in marked:  # the few subjects the overlay filter lets through
            changed = self.overlay.get(subjects[r])
            if changed is not None:
                out[r] = self._decision(measures[r], measures[r] in changed)
        return out

    def _numpy_probe(
        self, subjects: Sequence[str], canonical: bool
    ) -> tuple[list[int], list[int], list[int]]:
        """What ``probe`` (``_probe.c``) answers, for any texts: rows found and their slots, and
        the rows the overlay filter lets through."""
        snap = self.snapshot
        keys = None
        h = canonical_person_hashes(subjects) if canonical else None
        if h is None:
            keys = subject_keys(subjects, snap.secret, canonical=canonical)
            h = hashed(keys)
        rows, slots = snap.matches(subjects, h, keys) if snap.size else ([], [])
        marked: list[int] = []
        if self.overlay_filter is not None:
            cells, flags = _overlay_cells(h)
            through = self.overlay_filter.take(cells)
            through &= flags
            marked = through.nonzero()[0].tolist()
        return rows, slots, marked

    def size_in_bytes(self) -> int:
        return sum(self.snapshot.nbytes().values())
