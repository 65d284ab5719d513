"""The in-memory gallery against a brute-force reading of the same faces."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from processors import matcher
from processors.matcher import FaceTable, Match, ReadWriteLock, Store

DIM = 8


class Gallery:
    """One group's faces in a Store, the way GalleryIndex drives it, without the records."""

    def __init__(self, dimension: int) -> None:
        self._table = FaceTable()
        self._store = Store(dimension, self._table, ReadWriteLock())

    def __len__(self) -> int:
        return len(self._table)

    def upsert_many(self, faces: list[tuple[str, npt.NDArray[np.float32], frozenset[str]]]) -> None:
        if not faces:
            return
        with self._store.lock.writing():
            known = [self._table.find(face_id) for face_id, _, _ in faces]
            new = [
                face_id for (face_id, _, _), slot in zip(faces, known, strict=True) if slot is None
            ]
            added = iter(self._table.add_many(new, [""] * len(new)).tolist())
            slots = np.array([next(added) if slot is None else slot for slot in known])
            try:
                self._store.put_many(
                    slots, [lists for _, _, lists in faces], np.stack([v for _, v, _ in faces])
                )
            except ValueError:
                for face_id in new:
                    self._table.remove(face_id)
                raise

    def upsert(self, face_id: str, vector: npt.NDArray[np.float32], lists: frozenset[str]) -> None:
        self.upsert_many([(face_id, vector, lists)])

    def remove(self, face_id: str) -> None:
        with self._store.lock.writing():
            slot = self._table.find(face_id)
            if slot is not None:
                self._store.drop(slot)
                self._table.remove(face_id)

    def search(
        self, queries: npt.NDArray[np.float32], *, list_id: str | None, limit: int, threshold: float
    ) -> list[list[Match]]:
        lists = None if list_id is None else [list_id]
        return self._store.search(
            queries, group="", list_ids=lists, limit=limit, threshold=threshold
        )


def _unit(*values: float) -> npt.NDArray[np.float32]:
    vector = np.zeros(DIM, np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


def _ids(matches: list[Match]) -> list[str]:
    return [m.face_id for m in matches]


@pytest.fixture
def gallery() -> Gallery:
    g = Gallery(DIM)
    g.upsert("a", _unit(1, 0), frozenset({"staff"}))
    g.upsert("b", _unit(1, 1), frozenset({"staff", "vip"}))
    g.upsert("c", _unit(0, 1), frozenset({"vip"}))
    g.upsert("d", _unit(-1, 0), frozenset())
    return g


def test_top_k_best_first_with_cosine(gallery: Gallery) -> None:
    (matches,) = gallery.search(_unit(1, 0)[None], list_id=None, limit=3, threshold=-1)
    assert _ids(matches) == ["a", "b", "c"]
    assert [m.similarity for m in matches] == pytest.approx([1, 2**-0.5, 0], abs=1e-6)
    (everything,) = gallery.search(_unit(1, 0)[None], list_id=None, limit=10, threshold=-1)
    assert _ids(everything) == ["a", "b", "c", "d"]
    assert everything[-1].similarity == pytest.approx(-1)


def test_threshold_is_inclusive(gallery: Gallery) -> None:
    (matches,) = gallery.search(_unit(1, 0)[None], list_id=None, limit=10, threshold=0.7)
    assert _ids(matches) == ["a", "b"]
    (none,) = gallery.search(_unit(0, 0, 1)[None], list_id=None, limit=10, threshold=0.01)
    assert none == []


def test_list_restricts_candidates(gallery: Gallery) -> None:
    (vip,) = gallery.search(_unit(1, 0)[None], list_id="vip", limit=10, threshold=-1)
    assert _ids(vip) == ["b", "c"]
    (unknown,) = gallery.search(_unit(1, 0)[None], list_id="nobody", limit=10, threshold=-1)
    assert unknown == []


def test_batch_of_queries(gallery: Gallery) -> None:
    queries = np.stack([_unit(1, 0), _unit(0, 1), _unit(-1, 0)])
    results = gallery.search(queries, list_id=None, limit=1, threshold=0)
    assert [_ids(r) for r in results] == [["a"], ["c"], ["d"]]


def test_queries_and_faces_need_not_be_normalised(gallery: Gallery) -> None:
    gallery.upsert("e", 5 * _unit(0, 0, 1), frozenset())
    (matches,) = gallery.search(3 * _unit(0, 0, 1)[None], list_id=None, limit=1, threshold=0)
    assert _ids(matches) == ["e"] and matches[0].similarity == pytest.approx(1)


def test_upsert_replaces_descriptor_and_lists(gallery: Gallery) -> None:
    gallery.upsert("a", _unit(0, 1), frozenset({"vip"}))
    assert len(gallery) == 4
    (staff,) = gallery.search(_unit(1, 0)[None], list_id="staff", limit=10, threshold=-1)
    assert _ids(staff) == ["b"]
    (vip,) = gallery.search(_unit(0, 1)[None], list_id="vip", limit=10, threshold=0.99)
    assert sorted(_ids(vip)) == ["a", "c"]


def test_remove_keeps_the_others_intact(gallery: Gallery) -> None:
    gallery.remove("a")  # its row is refilled by the last face, "d"
    gallery.remove("a")  # a second tombstone is harmless
    gallery.remove("never-enrolled")
    assert len(gallery) == 3
    (matches,) = gallery.search(_unit(-1, 0)[None], list_id=None, limit=10, threshold=-1)
    assert _ids(matches) == ["d", "c", "b"]
    (staff,) = gallery.search(_unit(1, 0)[None], list_id="staff", limit=10, threshold=-1)
    assert _ids(staff) == ["b"]
    for face_id in ("b", "c", "d"):
        gallery.remove(face_id)
    assert len(gallery) == 0
    assert gallery.search(_unit(1, 0)[None], list_id=None, limit=5, threshold=-1) == [[]]
    assert gallery.search(_unit(1, 0)[None], list_id="vip", limit=5, threshold=-1) == [[]]


@pytest.mark.parametrize("chunk_rows", [matcher.CHUNK_ROWS, 100])
@pytest.mark.parametrize("together", [1, 37])
def test_agrees_with_brute_force_through_growth_and_churn(
    chunk_rows: int, together: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Faces upserted one at a time or `together` in one put_many (new and known faces mixed,
    across chunk boundaries), among removals."""
    monkeypatch.setattr(matcher, "CHUNK_ROWS", chunk_rows)  # 100: chunks added and dropped
    rng = np.random.default_rng(7)
    gallery = Gallery(DIM)
    faces: dict[str, tuple[npt.NDArray[np.float32], frozenset[str]]] = {}
    lists = ["x", "y", "z"]
    pending: dict[str, tuple[npt.NDArray[np.float32], frozenset[str]]] = {}
    for step in range(6000):  # past the initial capacity, with removals and re-enrollments
        face_id = f"f{rng.integers(3000)}"
        if step % 4 == 3:
            gallery.upsert_many([(f, v, linked) for f, (v, linked) in pending.items()])
            pending.clear()
            gallery.remove(face_id)
            faces.pop(face_id, None)
            continue
        vector = rng.standard_normal(DIM).astype(np.float32)
        linked = frozenset(lst for lst in lists if rng.random() < 0.4)
        pending[face_id] = (vector, linked)
        if len(pending) == together:
            gallery.upsert_many([(f, v, linked) for f, (v, linked) in pending.items()])
            pending.clear()
        faces[face_id] = (vector / np.linalg.norm(vector), linked)
    gallery.upsert_many([(f, v, linked) for f, (v, linked) in pending.items()])
    assert len(gallery) == len(faces) > 1024

    queries = rng.standard_normal((5, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    for list_id in [None, *lists]:
        results = gallery.search(queries, list_id=list_id, limit=7, threshold=0.5)
        for query, matches in zip(queries, results, strict=True):
            expected = sorted(
                ((float(v @ query), f) for f, (v, linked) in faces.items())
                if list_id is None
                else (
                    (float(v @ query), f) for f, (v, linked) in faces.items() if list_id in linked
                ),
                reverse=True,
            )
            expected = [(s, f) for s, f in expected if s >= 0.5][:7]
            assert _ids(matches) == [f for _, f in expected]
            assert [m.similarity for m in matches] == pytest.approx(
                [s for s, _ in expected], abs=1e-5
            )


def test_bad_input_is_refused(gallery: Gallery) -> None:
    with pytest.raises(ValueError, match="dimension 8"):
        gallery.upsert("x", np.ones(DIM + 1, np.float32), frozenset())
    with pytest.raises(ValueError, match="all zeros"):
        gallery.upsert("x", np.zeros(DIM, np.float32), frozenset())
    with pytest.raises(ValueError, match="dimension 8"):
        gallery.search(np.ones((2, DIM - 1), np.float32), list_id=None, limit=1, threshold=0)
    with pytest.raises(ValueError, match="limit"):
        gallery.search(_unit(1)[None], list_id=None, limit=0, threshold=0)
    assert len(gallery) == 4
