"""GalleryIndex.search_batch against a brute-force reading of the same faces."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pytest

from processors import matcher
from schemas.records import Face, Match
from streams.kafka.gallery import GalleryIndex, InvalidRecord, SearchRequest

A, B = "account-a", "account-b"
DIM = 128
Vector = npt.NDArray[np.float32]


def face_record(
    face_id: str, vectors: dict[int, Vector], lists: tuple[str, ...], account: str = A
) -> Face:
    return {
        "face_id": face_id,
        "account_id": account,
        "list_ids": list(lists),
        "user_data": None if face_id.endswith("0") else f"data of {face_id}",
        "event_id": None,
        "sample_id": None,
        "created_at": datetime.now(UTC),
        "descriptors": [
            {"version": v, "vector": vector.astype("<f4").tobytes()}
            for v, vector in vectors.items()
        ],
        "attributes": None,
        "avatar_sample_id": None,
    }


class Reference:
    """The faces as plain Python, searched by brute force."""

    def __init__(self) -> None:
        self.faces: dict[str, tuple[str, dict[int, Vector], frozenset[str], str | None]] = {}

    def apply(self, index: GalleryIndex, face_id: str, face: Face | None) -> None:
        index.apply(face_id, face)
        if face is None:
            self.faces.pop(face_id, None)
            return
        vectors = {
            d["version"]: np.frombuffer(d["vector"], "<f4").astype(np.float64)
            for d in face["descriptors"]
        }
        unit = {v: x / np.linalg.norm(x) for v, x in vectors.items()}
        self.faces[face_id] = (
            face["account_id"],
            unit,
            frozenset(face["list_ids"]),
            face["user_data"],
        )

    def search(self, request: SearchRequest) -> list[tuple[str, float, str | None]]:
        query = request.descriptor.astype(np.float64)
        query /= np.linalg.norm(query)
        scored = [
            (float(vectors[request.version] @ query), face_id, user_data)
            for face_id, (account, vectors, lists, user_data) in self.faces.items()
            if account == request.account_id
            and request.version in vectors
            and (lists & set(request.list_ids) or face_id in request.face_ids)
        ]
        scored.sort(reverse=True)
        return [(f, s, u) for s, f, u in scored if s >= request.threshold][: request.limit]


def unit_vectors(rng: np.random.Generator, count: int) -> npt.NDArray[np.float32]:
    vectors = rng.standard_normal((count, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def assert_same(
    found: list[list[Match]], expected: list[list[tuple[str, float, str | None]]]
) -> None:
    for got, want in zip(found, expected, strict=True):
        assert [m["face_id"] for m in got] == [f for f, _, _ in want]
        assert [m["similarity"] for m in got] == pytest.approx([s for _, s, _ in want], abs=1e-5)
        assert [m["user_data"] for m in got] == [u for _, _, u in want]


@pytest.fixture(scope="module")
def populated() -> tuple[GalleryIndex, Reference]:
    """3000 faces of A in lists "all" (every face), "tenth", "few" (0.3 %), some in "odd";
    some with a version 2 descriptor too; a few faces of B in the same list ids."""
    rng = np.random.default_rng(11)
    index, reference = GalleryIndex(), Reference()
    vectors = unit_vectors(rng, 3000)
    for i, vector in enumerate(vectors):
        lists = ["all"]
        lists += ["tenth"] if i % 10 == 3 else []
        lists += ["few"] if i % 300 == 7 else []
        lists += ["odd"] if i % 2 else []
        both = {1: vector, 2: vector[::-1].copy()} if i % 3 == 0 else {1: vector}
        reference.apply(index, f"f{i}", face_record(f"f{i}", both, tuple(lists)))
    for i, vector in enumerate(unit_vectors(rng, 50)):
        reference.apply(index, f"b{i}", face_record(f"b{i}", {1: vector}, ("all", "few"), B))
    return index, reference


CANDIDATES = [
    (("all",), ()),
    (("tenth",), ()),
    (("few",), ()),
    (("tenth", "few", "odd"), ()),  # overlapping lists: each face once
    ((), ("f5", "f17", "f2999", "b1", "nobody")),  # another account's face is no candidate
    (("few",), ("f5", "f7")),  # f7 is also in "few"
    (("nobody",), ()),
    ((), ()),
]


@pytest.mark.parametrize(("lists", "faces"), CANDIDATES)
@pytest.mark.parametrize("threshold", [-1.0, 0.1, 0.25])
def test_top_k_is_the_exact_top_k(
    populated: tuple[GalleryIndex, Reference],
    lists: tuple[str, ...],
    faces: tuple[str, ...],
    threshold: float,
) -> None:
    index, reference = populated
    rng = np.random.default_rng(len(lists) + len(faces))
    # Probes near known faces as well as random ones, so thresholds cut inside the top k.
    near = [reference.faces[f"f{i}"][1][1] for i in (7, 13, 607)]
    queries = [
        *unit_vectors(rng, 4),
        *(np.float32(v) + 0.05 * unit_vectors(rng, 1)[0] for v in near),
    ]
    for version in (1, 2):
        requests = [
            SearchRequest(
                A, version, q[::-1].copy() if version == 2 else q, lists, faces, 7, threshold
            )
            for q in queries
        ]
        assert_same(index.search_batch(requests), [reference.search(r) for r in requests])


def test_a_batch_equals_its_requests_one_by_one(populated: tuple[GalleryIndex, Reference]) -> None:
    index, _ = populated
    rng = np.random.default_rng(3)
    requests = [
        SearchRequest(account, version, q, candidates[0], candidates[1], limit, threshold)
        for q, account, version, candidates, limit, threshold in zip(
            unit_vectors(rng, 40),
            [A, A, B, A, "nobody"] * 8,
            [1, 1, 1, 2] * 10,
            CANDIDATES * 5,
            [1, 5, 20, 3] * 10,
            [-1.0, 0.0, 0.2, -1.0, 0.1] * 8,
            strict=True,
        )
    ]
    one_by_one = [index.search_batch([r])[0] for r in requests]
    together = index.search_batch(requests)
    # The same faces; similarities up to rounding (a matrix product sums in another order).
    assert_same(
        together, [[(m["face_id"], m["similarity"], m["user_data"]) for m in r] for r in one_by_one]
    )
    assert sum(map(len, one_by_one)) > 60


def test_limit_and_threshold_per_request_of_one_group(
    populated: tuple[GalleryIndex, Reference],
) -> None:
    index, reference = populated
    query = unit_vectors(np.random.default_rng(5), 1)[0]
    base = SearchRequest(A, 1, query, ("all",))
    requests = [replace(base, limit=1), replace(base, limit=30), replace(base, threshold=0.28)]
    assert_same(index.search_batch(requests), [reference.search(r) for r in requests])
    assert [len(m) for m in index.search_batch(requests)] == [1, 30, 2]


def test_no_gallery_or_no_candidates_match_nothing() -> None:
    index = GalleryIndex()
    query = np.ones(DIM, np.float32)
    assert index.search_batch([SearchRequest(A, 1, query, ("l",))]) == [[]]
    index.apply("f1", face_record("f1", {1: query}, ("l",)))
    found = index.search_batch(
        [
            SearchRequest(A, 1, query, ("l",)),
            SearchRequest(A, 1, query),
            SearchRequest(A, 2, query, ("l",)),
        ]
    )
    assert found == [
        [{"face_id": "f1", "similarity": pytest.approx(1.0), "user_data": "data of f1"}],
        [],
        [],
    ]
    assert index.search_batch([]) == []


def test_changes_are_seen_by_the_next_search() -> None:
    index, reference = GalleryIndex(), Reference()
    rng = np.random.default_rng(9)
    query = unit_vectors(rng, 1)[0]
    for step in range(1500):  # upserts moving faces between lists, removals, re-enrollments
        i = int(rng.integers(200))
        if step % 3 == 2:
            reference.apply(index, f"f{i}", None)
        else:
            lists = tuple(lst for lst in ("x", "y") if rng.random() < 0.5)
            vector = unit_vectors(rng, 1)[0]
            reference.apply(index, f"f{i}", face_record(f"f{i}", {1: vector}, lists))
        if step % 50 == 0:
            requests = [
                SearchRequest(A, 1, query, lists, faces, 10)
                for lists, faces in [(("x",), ()), (("x", "y"), ()), (("y",), ("f1", "f2"))]
            ]
            assert_same(index.search_batch(requests), [reference.search(r) for r in requests])


def test_searches_in_a_thread_see_only_whole_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """One thread searches without pause while this one enrolls, moves between lists and
    removes faces: every match names a face that was enrolled, with its exact similarity, and
    the faces present throughout are always found."""
    monkeypatch.setattr(matcher, "CHUNK_ROWS", 2048)  # many chunks: a search spans many locks
    rng = np.random.default_rng(21)
    index = GalleryIndex()
    vectors = unit_vectors(rng, 20000)
    query = vectors[0]
    # Fixed faces, the best matches, never changed: each search must return them first.
    index.apply("keep0", face_record("keep0", {1: query}, ("x",)))
    index.apply("keep1", face_record("keep1", {1: query + 0.01 * vectors[1]}, ("y",)))
    expected = {f"f{i}": float(vectors[i] @ query) for i in range(len(vectors))}
    expected |= {
        "keep0": 1.0,
        "keep1": float(
            index.search_batch([SearchRequest(A, 1, query, (), ("keep1",))])[0][0]["similarity"]
        ),
    }
    stop, failures, searches = threading.Event(), list[str](), [0]

    def hammer() -> None:
        requests = [
            SearchRequest(A, 1, query, ("x", "y"), (), len(vectors) + 2),
            SearchRequest(A, 1, query, ("y",), ("f5",), 3),
        ]
        while not stop.is_set():
            both, only_y = index.search_batch(requests)
            searches[0] += 1
            if [m["face_id"] for m in both[:2]] != ["keep0", "keep1"] or only_y[0][
                "face_id"
            ] != "keep1":
                failures.append(f"fixed faces not first: {both[:2]}, {only_y[:1]}")
            for m in both + only_y:
                if abs(m["similarity"] - expected[m["face_id"]]) > 1e-5:
                    failures.append(f"{m} is not {expected[m['face_id']]}")
            if len({m["face_id"] for m in both}) != len(both):
                failures.append(f"a face twice: {both}")

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        for i in range(1, len(vectors)):  # 16 chunks, then churn among them
            index.apply(f"f{i}", face_record(f"f{i}", {1: vectors[i]}, ("x", "y")[: i % 3]))
        for step in range(6000):
            if step % 100 == 0:
                time.sleep(0.002)  # as an event loop would between batches: searches get turns
            i = int(rng.integers(1, len(vectors)))
            if step % 3 == 2:
                index.apply(f"f{i}", None)
            else:
                lists = ("x", "y")[: int(rng.integers(3))]
                index.apply(f"f{i}", face_record(f"f{i}", {1: vectors[i]}, lists))
    finally:
        stop.set()
        thread.join()
    assert failures == []
    assert searches[0] >= 5


def test_versions_lacking_follows_changes_without_a_scan() -> None:
    """Kept as a count of faces per set of versions: one entry per set, whatever the faces."""
    index = GalleryIndex()
    one, two = unit_vectors(np.random.default_rng(2), 2)
    for i in range(2000):
        index.apply(f"f{i}", face_record(f"f{i}", {1: one, 2: two}, ("l",)))
    assert index.versions_lacking(1) == index.versions_lacking(2) == set()
    index.apply("old", face_record("old", {2: two}, ()))
    assert (index.versions_lacking(1), index.versions_lacking(2)) == ({2}, set())
    index.apply("f1", face_record("f1", {1: one}, ()))
    assert (index.versions_lacking(1), index.versions_lacking(2)) == ({2}, {1})
    index.apply("old", None)
    index.apply("f1", face_record("f1", {1: one, 2: two}, ()))
    assert index.versions_lacking(1) == index.versions_lacking(2) == set()
    assert len(index._with_versions) == 1  # one entry: nothing that grows with faces
    assert (index.coverage(A, 1), index.coverage(A, 2), len(index)) == (
        (2000, 2000),
        (2000, 2000),
        2000,
    )


def test_apply_many_is_applying_one_by_one() -> None:
    """Fetches of changes applied together (apply_many) leave the gallery as applying them one at
    a time does: repeated ids, moves between accounts, version changes, tombstones, and refused
    records (which leave their face as it was) among them."""
    rng = np.random.default_rng(5)
    together, alone = GalleryIndex(), GalleryIndex()
    changes: list[tuple[str, Face | None]] = []
    for step in range(3000):
        face_id = f"f{rng.integers(300)}"
        kind = rng.integers(10)
        if kind == 0:
            changes.append((face_id, None))
            continue
        one, two = unit_vectors(rng, 2)  # no two faces alike: no ties to order
        versions = [{1: one}, {2: two}, {1: one, 2: two}][int(rng.integers(3))]
        lists = tuple(lst for lst in ("x", "y", "z") if rng.random() < 0.5)
        record = face_record(face_id, versions, lists, account=(A, B)[int(kind == 1)])
        if kind == 2:  # refused: a NaN, a wrong length, no account
            bad = [np.full(DIM, np.nan, np.float32), np.ones(DIM - 1, np.float32)]
            record = face_record(face_id, {1: bad[step % 2]}, lists) if step % 3 else record
            record = {**record, "account_id": ""} if step % 3 == 0 else record
        changes.append((face_id, record))
    refused_alone = []
    for i, (face_id, face) in enumerate(changes):
        try:
            alone.apply(face_id, face)
        except InvalidRecord:
            refused_alone.append(i)
    refused_together, start = [], 0
    while start < len(changes):
        size = int(rng.integers(1, 200))
        refused = together.apply_many(changes[start : start + size])
        refused_together += [start + i for i, _ in refused]
        start += size

    assert refused_together == refused_alone and len(refused_alone) > 100
    assert len(together) == len(alone) > 100 and together.changes == alone.changes
    for version in (1, 2):
        assert together.versions_lacking(version) == alone.versions_lacking(version)
        for account in (A, B):
            assert together.coverage(account, version) == alone.coverage(account, version)
    requests = [
        SearchRequest(account, version, query, list_ids=lists, limit=400)
        for account in (A, B)
        for version in (1, 2)
        for lists in (("x",), ("y", "z"), ("x", "y", "z"))
        for query in unit_vectors(rng, 3)
    ]
    for got, want in zip(
        together.search_batch(requests), alone.search_batch(requests), strict=True
    ):
        assert [m["face_id"] for m in got] == [m["face_id"] for m in want]
        assert [m["similarity"] for m in got] == pytest.approx(
            [m["similarity"] for m in want], abs=1e-6
        )
        assert [m["user_data"] for m in got] == [m["user_data"] for m in want]
