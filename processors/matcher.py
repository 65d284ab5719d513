"""In-memory exact cosine top-k over enrolled faces, restricted to face lists, safe to search
from several threads while one thread changes it.

A face is a slot of a FaceTable (its id, its group: the account). A Store holds one descriptor
version: each face's unit vector lives in the segment of its key (group, exact set of lists), so
a search over some lists reads the segments that share a list with them, in place: no gather, no
copy, one matrix product per block of contiguous column-major rows (dimension x rows, the layout
BLAS reads fastest one query at a time). A removal moves its segment's last row into the hole.
Small segments are searched several per unit of work; still, faces spread over very many distinct
sets of lists cost a product call per set (1,000 sets at 1M faces: ~0.8x one segment's speed).

A search holds `lock.reading()` one block at a time (changes hold `writing()`), so a change waits
for one block's product, never a whole search. Blocks are read from the last row down: a row moved
by a removal only moves down, so a face present throughout a search is seen (a face whose lists
change during the search may be missed). Top k per block: the k-th best of a strided sample and
the best so far bound which similarities are kept, with no sort of all of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

CHUNK_ROWS = 65536  # rows of one full chunk of a segment
BLOCK_CELLS = 1 << 21  # queries x rows of one block: its similarities stay in cache
SAMPLE_STRIDE = 32
_GROWTH = 1.5

Floats = npt.NDArray[np.float32]
_Array = TypeVar("_Array", bound=np.ndarray)
Slots = npt.NDArray[np.signedinteger[Any]]


@dataclass(frozen=True, slots=True)
class Match:
    face_id: str
    similarity: float  # cosine, in [-1, 1]


def _normalised(vectors: npt.ArrayLike, dimension: int) -> Floats:
    """Unit rows (one per descriptor) of `vectors`, one descriptor or several."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.shape[-1:] != (dimension,) or array.ndim > 2:
        raise ValueError(f"expected descriptors of dimension {dimension}, got shape {array.shape}")
    array = array.reshape(-1, dimension)
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    if not np.all(norms > 0):
        raise ValueError("a descriptor is all zeros: it has no direction to compare")
    normalised: Floats = array / norms
    return normalised


def _grown(array: _Array, size: int, fill: object = None, most: int = 1 << 62) -> _Array:
    """`array` with room for `size` items along its last axis, grown 1.5x (at most `most`)."""
    have = array.shape[-1]
    if size <= have:
        return array
    room = min(max(size, int(have * _GROWTH), 16), most)
    grown: _Array = np.empty_like(array, shape=(*array.shape[:-1], room))
    grown[..., :have] = array
    if fill is not None:
        grown[..., have:] = fill
    return grown


class _Side:
    def __init__(self, enter: Callable[[], None], leave: Callable[[], None]) -> None:
        self._enter = enter
        self._leave = leave

    def __enter__(self) -> None:
        self._enter()

    def __exit__(self, *_: object) -> None:
        self._leave()


class ReadWriteLock:
    """Many readers or one writer; a waiting writer goes before new readers."""

    def __init__(self) -> None:
        self._turn = threading.Condition(threading.Lock())
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0
        self._reading = _Side(self._start_reading, self._stop_reading)
        self._writing_side = _Side(self._start_writing, self._stop_writing)

    def reading(self) -> AbstractContextManager[None]:
        return self._reading

    def writing(self) -> AbstractContextManager[None]:
        return self._writing_side

    def _start_reading(self) -> None:
        with self._turn:
            while self._writing or self._writers_waiting:
                self._turn.wait()
            self._readers += 1

    def _stop_reading(self) -> None:
        with self._turn:
            self._readers -= 1
            if not self._readers:
                self._turn.notify_all()

    def _start_writing(self) -> None:
        with self._turn:
            self._writers_waiting += 1
            while self._writing or self._readers:
                self._turn.wait()
            self._writers_waiting -= 1
            self._writing = True

    def _stop_writing(self) -> None:
        with self._turn:
            self._writing = False
            self._turn.notify_all()


class FaceTable:
    """Face id <-> slot, shared by the stores of every version: one dict entry per face. A
    group's name is held once however many faces it has (decoded records each bring a copy)."""

    def __init__(self) -> None:
        self._slots: dict[str, int] = {}
        self.ids: npt.NDArray[np.object_] = np.empty(0, object)  # slot -> face id
        self.groups: npt.NDArray[np.object_] = np.empty(0, object)  # slot -> group
        self._free: list[int] = []
        self._used = 0  # slots ever given out: the free ones and the faces'
        self._names: dict[str, str] = {}  # group -> the one copy of its name

    def __len__(self) -> int:
        return len(self._slots)

    def find(self, face_id: str) -> int | None:
        return self._slots.get(face_id)

    def add_many(self, face_ids: Sequence[str], groups: Sequence[str]) -> Slots:
        """Slots for new faces (ids not in the table), freed ones first."""
        reused = [self._free.pop() for _ in range(min(len(face_ids), len(self._free)))]
        fresh = len(face_ids) - len(reused)
        slots = np.array(reused + list(range(self._used, self._used + fresh)), np.int64)
        self._used += fresh
        self.ids = _grown(self.ids, self._used)
        self.groups = _grown(self.groups, self._used)
        names = self._names
        self.ids[slots] = face_ids
        self.groups[slots] = [names.setdefault(group, group) for group in groups]
        self._slots.update(zip(face_ids, slots.tolist(), strict=True))
        return slots

    def remove(self, face_id: str) -> None:
        slot = self._slots.pop(face_id)
        self.ids[slot] = self.groups[slot] = None
        self._free.append(slot)


class _Segment:
    """The faces of one key, as chunks of CHUNK_ROWS rows (only the last one partly full)."""

    def __init__(self, key: tuple[str, frozenset[str]], dimension: int) -> None:
        self.key = key
        self.dimension = dimension
        self.size = 0
        self.vectors: list[Floats] = []  # dimension x rows, per chunk
        self.slots: list[Slots] = []

    def extend(self, slots: Slots, vectors: Floats) -> int:
        """Appends the faces (vectors: one row each); returns the row of the first."""
        first = done = self.size
        while done < first + len(slots):
            chunk, offset = divmod(done, CHUNK_ROWS)
            if chunk == len(self.vectors):
                self.vectors.append(np.empty((self.dimension, 16), np.float32))
                self.slots.append(np.empty(16, np.int32))
            take = min(first + len(slots) - done, CHUNK_ROWS - offset)
            # Chunks grow 1.5x up to CHUNK_ROWS: a gallery never holds twice its vectors.
            self.vectors[chunk] = _grown(self.vectors[chunk], offset + take, most=CHUNK_ROWS)
            self.slots[chunk] = _grown(self.slots[chunk], offset + take, most=CHUNK_ROWS)
            taken = slice(done - first, done - first + take)
            self.vectors[chunk][:, offset : offset + take] = vectors[taken].T
            self.slots[chunk][offset : offset + take] = slots[taken]
            done += take
        self.size = done
        return first

    def set(self, row: int, vector: Floats) -> None:
        chunk, offset = divmod(row, CHUNK_ROWS)
        self.vectors[chunk][:, offset] = vector

    def remove(self, row: int) -> int | None:
        """Empties `row`; returns the slot of the last face if it moved there."""
        last = self.size - 1
        moved = None
        if row != last:
            chunk, offset = divmod(row, CHUNK_ROWS)
            last_chunk, last_offset = divmod(last, CHUNK_ROWS)
            self.vectors[chunk][:, offset] = self.vectors[last_chunk][:, last_offset]
            moved = int(self.slots[last_chunk][last_offset])
            self.slots[chunk][offset] = moved
        self.size = last
        if last % CHUNK_ROWS == 0 and len(self.vectors) > last // CHUNK_ROWS:
            del self.vectors[-1], self.slots[-1]
        return moved

    def blocks(self, rows: int) -> list[tuple[int, int]]:
        """Ranges of at most `rows` rows, none across chunks, the last rows first."""
        ranges = []
        for start in range(0, self.size, CHUNK_ROWS):
            end = min(start + CHUNK_ROWS, self.size)
            ranges += [(lo, min(lo + rows, end)) for lo in range(start, end, rows)]
        return ranges[::-1]


def _block_rows(queries: int) -> int:
    return min(CHUNK_ROWS, max(1024, BLOCK_CELLS // queries))


def _units(segments: list[_Segment], rows: int) -> list[list[tuple[_Segment, int, int]]]:
    """The segments' blocks, several small ones together, so that each unit of work (one lock
    hold, one top-k merge) covers up to `rows` rows however the faces are split in lists."""
    units: list[list[tuple[_Segment, int, int]]] = []
    filled = rows
    for segment in segments:
        for start, end in segment.blocks(rows):
            if filled + end - start > rows:
                units.append([])
                filled = 0
            units[-1].append((segment, start, end))
            filled += end - start
    return units


class _TopK:
    """The k best (similarity, face id) per query so far, best first, -inf padded."""

    def __init__(self, queries: int, k: int, threshold: float) -> None:
        self.k = k
        self.threshold = threshold
        self.similarities = np.full((queries, k), -np.inf, np.float32)
        self.ids = np.empty((queries, k), object)

    def _bounds(self, similarities: Floats) -> Floats:
        """Per query, the least similarity of a block that can still enter its top k."""
        bound = np.maximum(self.similarities[:, -1], np.float32(self.threshold))
        if similarities.shape[1] >= SAMPLE_STRIDE * self.k:
            # The k-th best of a sample is at most the k-th best of the block.
            sample = similarities[:, ::SAMPLE_STRIDE]
            kth = np.partition(sample, sample.shape[1] - self.k, axis=1)[:, -self.k]
            bound = np.maximum(bound, kth)
        return bound

    def add(self, similarities: Floats, slots: Slots, ids: npt.NDArray[np.object_]) -> None:
        """Merges a block's (queries x columns) similarities of the faces ids[slots]."""
        kept = similarities >= self._bounds(similarities)[:, None]  # contiguous
        hit, column = np.divmod(np.flatnonzero(kept), kept.shape[1])  # faster than nonzero
        if not len(hit):
            return
        count, k = len(self.similarities), self.k
        query = np.concatenate([np.repeat(np.arange(count), k), hit])
        found = np.concatenate([self.similarities.ravel(), similarities[hit, column]])
        ids = np.concatenate([self.ids.ravel(), ids[slots[column]]])
        order = np.lexsort((-found, query))
        query, found, ids = query[order], found[order], ids[order]
        rank = np.arange(len(query)) - np.searchsorted(query, query)
        keep = rank < k
        self.similarities[query[keep], rank[keep]] = found[keep]
        self.ids[query[keep], rank[keep]] = ids[keep]

    def matches(self) -> list[list[Match]]:
        results = []
        for similarities, ids in zip(self.similarities.tolist(), self.ids.tolist(), strict=True):
            seen: dict[str, float] = {}  # a face moved during the search may come twice
            for similarity, face_id in zip(similarities, ids, strict=True):
                if similarity >= self.threshold and face_id not in seen:
                    seen[face_id] = similarity
            results.append([Match(f, s) for f, s in seen.items()])
        return results


class Store:
    """The faces' vectors of one descriptor version, by slot of a shared FaceTable."""

    def __init__(self, dimension: int, table: FaceTable, lock: ReadWriteLock) -> None:
        self.dimension = dimension
        self.table = table
        self.lock = lock
        self._where = np.full(0, -1, np.int64)  # slot -> segment number << 32 | row, or -1
        self._segments: dict[int, _Segment] = {}
        self._numbers: dict[tuple[str, frozenset[str]], int] = {}  # key -> segment number
        self._by_list: dict[tuple[str, str], set[int]] = {}  # (group, list) -> segments
        self._next = 0
        self.sizes: dict[str, int] = {}  # group -> faces

    def __contains__(self, slot: int) -> bool:
        return slot < len(self._where) and self._where[slot] >= 0

    def put_many(
        self, slots: Slots, lists: Sequence[frozenset[str]], descriptors: npt.ArrayLike
    ) -> None:
        """Adds the faces (distinct slots), or replaces their descriptors and lists: faces of
        one segment are appended together. Call under lock.writing()."""
        vectors = _normalised(descriptors, self.dimension)
        groups = self.table.groups[slots].tolist()
        joining: dict[tuple[str, frozenset[str]], list[int]] = {}
        for i, key in enumerate(zip(groups, lists, strict=True)):
            slot = int(slots[i])
            if slot in self:
                number, row = divmod(int(self._where[slot]), 1 << 32)
                if self._segments[number].key == key:
                    self._segments[number].set(row, vectors[i])
                    continue
                self.drop(slot)
            joining.setdefault(key, []).append(i)
        if len(slots):
            self._where = _grown(self._where, int(slots.max()) + 1, -1)
        for key, members in joining.items():
            number = self._number(key)
            which = slots[members]
            first = self._segments[number].extend(which, vectors[members])
            self._where[which] = number << 32 | np.arange(first, first + len(members))
            self.sizes[key[0]] = self.sizes.get(key[0], 0) + len(members)

    def _number(self, key: tuple[str, frozenset[str]]) -> int:
        """The number of the key's segment, made if it has none."""
        number = self._numbers.get(key)
        if number is None:
            number = self._numbers[key] = self._next
            self._next += 1
            self._segments[number] = _Segment(key, self.dimension)
            group, lists = key
            for list_id in lists:
                self._by_list.setdefault((group, list_id), set()).add(number)
        return number

    def drop(self, slot: int) -> None:
        """Forgets the face, if here. Call under lock.writing()."""
        if slot not in self:
            return
        number, row = divmod(int(self._where[slot]), 1 << 32)
        self._where[slot] = -1
        segment = self._segments[number]
        moved = segment.remove(row)
        if moved is not None:
            self._where[moved] = number << 32 | row
        group, lists = segment.key
        self.sizes[group] -= 1
        if not self.sizes[group]:
            del self.sizes[group]
        if not segment.size:
            del self._segments[number], self._numbers[segment.key]
            for list_id in lists:
                numbers = self._by_list[group, list_id]
                numbers.discard(number)
                if not numbers:
                    del self._by_list[group, list_id]

    def search(
        self,
        descriptors: npt.ArrayLike,
        *,
        group: str,
        list_ids: Sequence[str] | None,
        face_ids: Sequence[str] = (),
        limit: int,
        threshold: float,
    ) -> list[list[Match]]:
        """Per query row, the `limit` most similar faces at or above `threshold`, best first,
        among the group's faces of any of `list_ids` (None: all of its faces) and `face_ids`."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        queries = _normalised(descriptors, self.dimension)
        if not len(queries):
            return []
        with self.lock.reading():
            segments = self._chosen(group, list_ids)
            candidates = sum(s.size for s in segments) + len(face_ids)
            top = _TopK(len(queries), max(1, min(limit, candidates)), threshold)
            self._search_faces(queries, top, group, face_ids, {id(s) for s in segments})
            units = _units(segments, _block_rows(len(queries)))
        width = max((sum(end - start for _, start, end in unit) for unit in units), default=0)
        similarities = np.empty((len(queries), width), np.float32)
        for unit in units:
            with self.lock.reading():
                filled, slots = 0, []
                for segment, start, stop in unit:
                    end = min(stop, segment.size)  # rows removed since are gone
                    if start >= end:
                        continue
                    chunk, offset = divmod(start, CHUNK_ROWS)
                    rows = slice(offset, offset + end - start)
                    part = similarities[:, filled : filled + end - start]
                    np.matmul(queries, segment.vectors[chunk][:, rows], out=part)
                    slots.append(segment.slots[chunk][rows])
                    filled += end - start
                if filled:
                    top.add(similarities[:, :filled], np.concatenate(slots), self.table.ids)
        return top.matches()

    def _chosen(self, group: str, list_ids: Sequence[str] | None) -> list[_Segment]:
        if list_ids is None:
            numbers = {n for n, s in self._segments.items() if s.key[0] == group}
        else:
            numbers = set().union(*(self._by_list.get((group, lst), ()) for lst in list_ids))
        return [self._segments[n] for n in sorted(numbers)]

    def _search_faces(
        self,
        queries: Floats,
        top: _TopK,
        group: str,
        face_ids: Sequence[str],
        among: set[int],
    ) -> None:
        """The named faces of the group not already among the chosen segments."""
        vectors, names = [], []
        for face_id in dict.fromkeys(face_ids):
            slot = self.table.find(face_id)
            if slot is None or slot not in self or self.table.groups[slot] != group:
                continue
            number, row = divmod(int(self._where[slot]), 1 << 32)
            segment = self._segments[number]
            if id(segment) not in among:
                chunk, offset = divmod(row, CHUNK_ROWS)
                vectors.append(segment.vectors[chunk][:, offset])
                names.append(face_id)
        if vectors:
            similarities = queries @ np.stack(vectors, axis=1)
            top.add(similarities, np.arange(len(names)), np.array(names, object))
