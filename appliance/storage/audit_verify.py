"""Checking the audit chain: pure functions over the rows as stored (see `appliance.storage.audit`).

Verification first works out, for every row, the `seq` its hash was computed with (its
"written seq"): a row whose hash matches its own `seq` was written there; any other row is
placed by following its `prev_hash` back to a placed record (or, when its predecessor is gone,
by trying the seqs just above its own and the seqs nobody holds), and counts as placed only if
its hash matches the position that gives. Everything else follows from comparing numbers:

    not placed, its content fits another row's hash    -> "reordered" (contents swapped)
    not placed                                         -> "changed"   (edited in place)
    written seq != seq                                 -> "reordered" (moved), or "inserted" when
                                                          another row is that record already
    a seq below the highest that no record accounts for -> "deleted"
    record n chains to a hash record n-1 does not have -> "changed" (n-1 edited and re-hashed)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from appliance.storage.audit import GENESIS_HASH, AuditProblem, record_hash

# Matching swapped contents (or moved records to gaps) compares every edited row with every
# other (or every gap): quadratic, so only attempted for a few hundred. Beyond that, each
# edited row is reported as "changed", which still names it.
MAX_PAIRED_ROWS = 256
# Total hashes spent looking for records renumbered down after a deletion.
MAX_SHIFT_TRIES = 16 * MAX_PAIRED_ROWS
_KIND_ORDER = {"deleted": 0, "changed": 1, "reordered": 2, "inserted": 3}


@dataclass(frozen=True, slots=True)
class StoredRow:
    """One `audit_log` row exactly as read; fields are `object` because a tampered row may hold anything."""

    seq: int
    payload: tuple[object, ...]  # time, actor, device_id, event, outcome, detail
    prev_hash: object
    hash: object

    @classmethod
    def from_values(cls, values: tuple[object, ...]) -> StoredRow:
        seq, *payload, prev_hash, hash_value = values
        if not isinstance(seq, int):
            # INTEGER PRIMARY KEY: SQLite itself guarantees an integer here.
            raise TypeError(f"audit_log.seq holds {seq!r}")
        return cls(seq, tuple(payload), prev_hash, hash_value)

    @property
    def well_typed(self) -> bool:
        """Text everywhere (device_id may be NULL), as the appliance writes it."""
        time, actor, device_id, event, outcome, detail = self.payload
        texts = (time, actor, event, outcome, detail, self.prev_hash, self.hash)
        return all(isinstance(value, str) for value in texts) and (
            device_id is None or isinstance(device_id, str)
        )

    def fits(self, seq: int, prev_hash: object, expected_hash: object) -> bool:
        """Whether this row's content, written as `seq` after `prev_hash`, hashes to `expected_hash`."""
        return self.well_typed and record_hash(seq, self.payload, prev_hash) == expected_hash


def verify_records(rows: Sequence[StoredRow]) -> list[AuditProblem]:
    """Every problem in the chain `rows` (any order); empty when the chain is intact."""
    rows = sorted(rows, key=lambda row: row.seq)
    written = _written_seqs(rows)
    _place_into_gaps(rows, written)
    unplaced = [row for row in rows if row.seq not in written]
    genuine, placement_problems = _placement(rows, written)
    problems = [
        *_edited(unplaced),
        *placement_problems,
        *_missing(_present(rows, written)),
        *_broken_links(genuine),
    ]
    return sorted(set(problems), key=lambda p: (p.seq, _KIND_ORDER[p.kind], p.message))


def _written_seqs(rows: Sequence[StoredRow]) -> dict[int, int]:
    """Row seq -> the seq its hash was written with, for every row whose hash can be placed."""
    return _ChainWalk(rows).place_all()


class _ChainWalk:
    """Places rows by following prev_hash back to a row already placed (or to the genesis)."""

    def __init__(self, rows: Sequence[StoredRow]) -> None:
        self._rows = rows
        self._by_hash: dict[object, StoredRow] = {}
        for row in rows:
            if isinstance(row.hash, str):
                self._by_hash.setdefault(row.hash, row)
        self._written = {row.seq: row.seq for row in rows if row.fits(row.seq, row.prev_hash, row.hash)}
        # Position along the links, known even for a row whose content was edited.
        self._position = dict(self._written)
        self._visited = set(self._written)
        self._shift_tries_left = MAX_SHIFT_TRIES

    def place_all(self) -> dict[int, int]:
        for row in self._rows:
            if row.seq not in self._visited:
                self._place_from(row)
        return self._written

    def _place_from(self, row: StoredRow) -> None:
        path: list[StoredRow] = []
        current = row
        base: int | None
        while True:
            path.append(current)
            self._visited.add(current.seq)
            if current.prev_hash == GENESIS_HASH:
                base = 0
                break
            predecessor = self._by_hash.get(current.prev_hash)
            if predecessor is None:
                base = self._base_after_deletion(current)
                break
            if predecessor.seq in self._visited:
                # Placed before, or on this very path (a cycle only forged hashes can make).
                base = self._position.get(predecessor.seq)
                break
            current = predecessor
        if base is None:
            return
        for depth, member in enumerate(reversed(path), start=1):
            self._position[member.seq] = base + depth
            if member.fits(base + depth, member.prev_hash, member.hash):
                self._written[member.seq] = base + depth

    def _base_after_deletion(self, row: StoredRow) -> int | None:
        """The position before `row`, whose predecessor is gone, if later rows were renumbered.

        An attacker hiding a deletion moves the later rows down; `row` then fits a seq a little
        above its own.
        """
        tries = min(MAX_PAIRED_ROWS, self._shift_tries_left)
        self._shift_tries_left -= tries
        for seq in range(row.seq + 1, row.seq + 1 + tries):
            if row.fits(seq, row.prev_hash, row.hash):
                return seq - 1
        return None


def _present(rows: Sequence[StoredRow], written: dict[int, int]) -> set[int]:
    """Seqs accounted for: placed records, and the places of rows that could not be placed."""
    return set(written.values()) | {row.seq for row in rows if row.seq not in written}


def _gaps(present: set[int]) -> Iterator[tuple[int, int]]:
    """(first, last) of each run of seqs missing below the highest present one."""
    expected = 1
    for seq in sorted(present):
        if seq > expected:
            yield expected, seq - 1
        expected = max(expected, seq + 1)


def _place_into_gaps(rows: Sequence[StoredRow], written: dict[int, int]) -> None:
    """Place moved records whose predecessor is gone, by trying the seqs nobody holds.

    Following prev_hash cannot place a record whose predecessor was deleted; if it was also
    moved, it fits one of the missing seqs. Bounded like the pairing of swapped contents.
    """
    unplaced = [row for row in rows if row.seq not in written]
    if not unplaced or len(unplaced) > MAX_PAIRED_ROWS:
        return
    missing: list[int] = []
    for first, last in _gaps(_present(rows, written)):
        missing.extend(range(first, min(last, first + MAX_PAIRED_ROWS) + 1))
        if len(missing) > MAX_PAIRED_ROWS:
            return
    for row in unplaced:
        fitting = next((seq for seq in missing if row.fits(seq, row.prev_hash, row.hash)), None)
        if fitting is not None:
            written[row.seq] = fitting


def _edited(unplaced: Sequence[StoredRow]) -> Iterable[AuditProblem]:
    pairable = len(unplaced) <= MAX_PAIRED_ROWS
    for row in unplaced:
        owner = None
        if pairable:
            owner = next(
                (
                    other
                    for other in unplaced
                    if other is not row and row.fits(other.seq, other.prev_hash, other.hash)
                ),
                None,
            )
        if owner is not None:
            yield AuditProblem(
                row.seq,
                "reordered",
                f"seq {row.seq} holds the content written as seq {owner.seq} (contents swapped)",
            )
        else:
            yield AuditProblem(
                row.seq, "changed", f"seq {row.seq} no longer matches its hash: the record was edited"
            )


def _placement(
    rows: Sequence[StoredRow], written: dict[int, int]
) -> tuple[dict[int, StoredRow], list[AuditProblem]]:
    """The row that is each written record, and the rows that are out of place or extra."""
    claims: dict[int, list[StoredRow]] = defaultdict(list)
    for row in rows:
        if row.seq in written:
            claims[written[row.seq]].append(row)
    chained_to = {row.prev_hash for row in rows}
    genuine: dict[int, StoredRow] = {}
    problems = []
    for seq, claimants in claims.items():
        # The record the chain goes on from is the real one; a copy or forgery is a dead end.
        pool = [row for row in claimants if row.hash in chained_to] or claimants
        chosen = next((row for row in pool if row.seq == seq), pool[0])
        genuine[seq] = chosen
        for row in claimants:
            if row is chosen and row.seq != seq:
                problems.append(
                    AuditProblem(row.seq, "reordered", f"seq {row.seq} holds the record written as seq {seq}")
                )
            elif row is not chosen and row.hash == chosen.hash:
                problems.append(AuditProblem(row.seq, "inserted", f"seq {row.seq} is a copy of record {seq}"))
            elif row is not chosen:
                problems.append(
                    AuditProblem(
                        row.seq,
                        "inserted",
                        f"seq {row.seq} was inserted: it claims to be record {seq}, "
                        f"but the chain goes through seq {chosen.seq}",
                    )
                )
    return genuine, problems


def _missing(present: set[int]) -> Iterable[AuditProblem]:
    for first, last in _gaps(present):
        span = f"record {first} is" if first == last else f"records {first} to {last} are"
        yield AuditProblem(first, "deleted", f"{span} missing: deleted from the trail")


def _broken_links(genuine: dict[int, StoredRow]) -> Iterable[AuditProblem]:
    for seq, row in genuine.items():
        if seq == 1:
            if row.prev_hash != GENESIS_HASH:
                yield AuditProblem(
                    row.seq, "changed", "record 1 does not start from the genesis hash: it was rewritten"
                )
            continue
        predecessor = genuine.get(seq - 1)
        # No predecessor: it is missing or edited, and reported as such already.
        if predecessor is not None and row.prev_hash != predecessor.hash:
            yield AuditProblem(
                predecessor.seq,
                "changed",
                f"seq {predecessor.seq} was rewritten and re-hashed: "
                f"record {seq} was chained to a different record {seq - 1}",
            )
