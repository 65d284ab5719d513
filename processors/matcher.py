"""In-memory exact cosine search over enrolled faces, restricted to a face list when asked.

Descriptors live in one contiguous float32 matrix (row i = face self._ids[i]); a removal moves
the last row into the hole, so the live rows stay [0, n) and a search is one matrix product per
batch of queries plus argpartition for the top k. Not locked: meant for one asyncio thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

_INITIAL_CAPACITY = 1024


@dataclass(frozen=True, slots=True)
class Match:
    face_id: str
    similarity: float  # cosine, in [-1, 1]


def _normalised(vectors: npt.ArrayLike, dimension: int) -> npt.NDArray[np.float32]:
    array = np.asarray(vectors, dtype=np.float32)
    if array.shape[-1:] != (dimension,):
        raise ValueError(f"expected descriptors of dimension {dimension}, got shape {array.shape}")
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    if not np.all(norms > 0):
        raise ValueError("a descriptor is all zeros: it has no direction to compare")
    normalised: npt.NDArray[np.float32] = array / norms
    return normalised


class Gallery:
    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self._vectors = np.empty((_INITIAL_CAPACITY, dimension), np.float32)
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}
        self._lists: list[frozenset[str]] = []
        # list id -> rows of its faces, and the same as a sorted array, rebuilt lazily after
        # a change, since searches far outnumber enrollments.
        self._members: dict[str, set[int]] = {}
        self._member_rows: dict[str, npt.NDArray[np.intp]] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def upsert(self, face_id: str, descriptor: npt.ArrayLike, list_ids: frozenset[str]) -> None:
        """Add the face, or replace its descriptor and lists if it is already here."""
        vector = _normalised(descriptor, self.dimension).reshape(self.dimension)
        row = self._rows.get(face_id)
        if row is None:
            row = len(self._ids)
            if row == len(self._vectors):
                grown = np.empty((2 * row, self.dimension), np.float32)
                grown[:row] = self._vectors
                self._vectors = grown
            self._ids.append(face_id)
            self._lists.append(frozenset())
            self._rows[face_id] = row
        self._vectors[row] = vector
        self._link(row, self._lists[row], list_ids)
        self._lists[row] = list_ids

    def remove(self, face_id: str) -> None:
        """Forget the face; unknown ids are ignored (a tombstone may arrive twice)."""
        row = self._rows.pop(face_id, None)
        if row is None:
            return
        self._link(row, self._lists[row], frozenset())
        last = len(self._ids) - 1
        if row != last:
            moved_lists = self._lists[last]
            self._link(last, moved_lists, frozenset())
            self._vectors[row] = self._vectors[last]
            self._ids[row] = self._ids[last]
            self._lists[row] = moved_lists
            self._rows[self._ids[row]] = row
            self._link(row, frozenset(), moved_lists)
        self._ids.pop()
        self._lists.pop()

    def search(
        self,
        descriptors: npt.ArrayLike,
        *,
        list_id: str | None,
        limit: int,
        threshold: float,
    ) -> list[list[Match]]:
        """For each query row, the `limit` most similar faces at or above `threshold`, best first.

        With `list_id`, only faces linked to that list are candidates.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        queries = _normalised(descriptors, self.dimension).reshape(-1, self.dimension)
        if list_id is None:
            rows = None
            candidates = self._vectors[: len(self._ids)]
        else:
            rows = self._rows_of(list_id)
            candidates = self._vectors[rows]
        count = len(candidates)
        if not count:
            return [[] for _ in queries]
        similarities = queries @ candidates.T
        k = min(limit, count)
        top = np.argpartition(-similarities, k - 1, axis=1)[:, :k]
        top_similarities = np.take_along_axis(similarities, top, axis=1)
        order = np.argsort(-top_similarities, axis=1)
        top = np.take_along_axis(top, order, axis=1)
        top_similarities = np.take_along_axis(top_similarities, order, axis=1)
        if rows is not None:
            top = rows[top]
        return [
            [
                Match(self._ids[row], float(similarity))
                for row, similarity in zip(row_ids.tolist(), sims.tolist(), strict=True)
                if similarity >= threshold
            ]
            for row_ids, sims in zip(top, top_similarities, strict=True)
        ]

    def _link(self, row: int, old: frozenset[str], new: frozenset[str]) -> None:
        """Move `row` from the lists in `old` to those in `new`."""
        for list_id in old - new:
            members = self._members[list_id]
            members.discard(row)
            if not members:
                del self._members[list_id]
            self._member_rows.pop(list_id, None)
        for list_id in new - old:
            self._members.setdefault(list_id, set()).add(row)
            self._member_rows.pop(list_id, None)

    def _rows_of(self, list_id: str) -> npt.NDArray[np.intp]:
        members = self._members.get(list_id)
        if members is None:  # not cached: list ids come from requests, unknown ones are endless
            return np.empty(0, np.intp)
        rows = self._member_rows.get(list_id)
        if rows is None:
            # Sorted, so gathering the candidates' vectors reads memory in order.
            rows = np.fromiter(sorted(members), dtype=np.intp, count=len(members))
            self._member_rows[list_id] = rows
        return rows
