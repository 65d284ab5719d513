"""The matcher workers' view of the compacted faces topic: one gallery per account and version.

Accounts never share a gallery, so one account can never match another's faces, and a gallery
holds one descriptor version, so a match never compares descriptors of different versions.
"""

from __future__ import annotations

import ctypes
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt

from processors.matcher import FaceTable, ReadWriteLock, Store
from schemas.records import Face, List, Match
from streams.models.modelset import DESCRIPTOR_BYTES

Floats = npt.NDArray[np.float32]
Vectors = dict[int, Floats]


def release_freed_memory() -> None:
    """Hands the C heap's freed pages back to the system (glibc's malloc_trim; elsewhere
    nothing). Loading a gallery passes a topic's worth of decoded records and per-fetch arrays
    through the allocator, which keeps their pages: measured at 1M faces, 1.69x the
    descriptors' bytes in RSS before, 1.44x after. Called once a load is done."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.malloc_trim(0)


class InvalidRecord(ValueError):
    """A Face or List record that decodes but cannot be applied; its previous state stays."""


@dataclass(frozen=True, slots=True)
class CheckedFaces:
    """Faces' descriptors checked together: per version one matrix of them all (a row per
    face having that version), per face its row in each, and the faces refused, with why."""

    matrices: dict[int, Floats]
    rows: dict[int, dict[int, int]]  # index of the face -> version -> row
    refused: dict[int, InvalidRecord]


def _descriptor_bytes(face: Face) -> dict[int, bytes]:
    if not face["account_id"]:
        raise InvalidRecord("the face has no account id")
    found: dict[int, bytes] = {}
    for descriptor in face["descriptors"]:
        version, data = descriptor["version"], descriptor["vector"]
        size = DESCRIPTOR_BYTES.get(version)
        if size is None:
            raise InvalidRecord(f"unknown descriptor version {version}")
        if version in found:
            raise InvalidRecord(f"two descriptors of version {version}")
        if len(data) != size:
            raise InvalidRecord(f"a version {version} descriptor of {len(data)} bytes, not {size}")
        found[version] = data
    return found


def check_faces(faces: Sequence[Face | None]) -> CheckedFaces:
    """Each face's descriptors checked: a known version, its dimension, finite values, not all
    zeros. None (a tombstone) has none. The values are checked a matrix at a time."""
    refused: dict[int, InvalidRecord] = {}
    rows: dict[int, dict[int, int]] = {}
    data: dict[int, list[bytes]] = {}
    owners: dict[int, list[int]] = {}  # version -> index of the face of each row
    for i, face in enumerate(faces):
        if face is None:
            continue
        try:
            found = _descriptor_bytes(face)
        except InvalidRecord as invalid:
            refused[i] = invalid
            continue
        rows[i] = {}
        for version, vector in found.items():
            rows[i][version] = len(owners.setdefault(version, []))
            owners[version].append(i)
            data.setdefault(version, []).append(vector)
    matrices: dict[int, Floats] = {}
    for version, vectors in data.items():
        matrix = np.frombuffer(b"".join(vectors), "<f4").reshape(len(vectors), -1)
        unusable = ~(np.isfinite(matrix).all(axis=1) & matrix.any(axis=1))
        for row in np.flatnonzero(unusable).tolist():
            i = owners[version][row]
            rows.pop(i, None)
            refused[i] = InvalidRecord(
                f"a version {version} descriptor that is not finite or all zeros"
            )
        matrices[version] = matrix
    return CheckedFaces(matrices, rows, refused)


def face_vectors(face: Face) -> Vectors:
    """The face's descriptors by version, checked (see check_faces), or InvalidRecord."""
    checked = check_faces([face])
    if checked.refused:
        raise checked.refused[0]
    return {version: checked.matrices[version][row] for version, row in checked.rows[0].items()}


@dataclass(frozen=True, slots=True)
class FaceChanges:
    """Changes to the gallery, in columns: face ids, and per change its account (None: a
    tombstone), lists and user data; the descriptors checked together. Made from decoded
    records (`of`); cheap to pickle, holding no record dicts, so that another process can
    decode a fetch into it (streams.worker.gallery_follower)."""

    face_ids: list[str]
    accounts: list[str | None]
    lists: list[tuple[str, ...]]
    user_data: list[str | None]
    checked: CheckedFaces

    @classmethod
    def of(cls, changes: Sequence[tuple[str, Face | None]]) -> FaceChanges:
        names: dict[str, str] = {}  # one copy of each account and each list of lists
        lists: dict[tuple[str, ...], tuple[str, ...]] = {}
        accounts: list[str | None] = []
        linked: list[tuple[str, ...]] = []
        user_data: list[str | None] = []
        for _, face in changes:
            if face is None:
                accounts.append(None)
                linked.append(())
                user_data.append(None)
                continue
            accounts.append(names.setdefault(face["account_id"], face["account_id"]))
            face_lists = tuple(face["list_ids"])
            linked.append(lists.setdefault(face_lists, face_lists))
            user_data.append(face["user_data"])
        checked = check_faces([face for _, face in changes])
        return cls([face_id for face_id, _ in changes], accounts, linked, user_data, checked)


def list_owner(record: List) -> str:
    if not record["account_id"]:
        raise InvalidRecord("the list has no account id")
    return record["account_id"]


@dataclass(frozen=True, slots=True)
class SearchRequest:
    account_id: str
    version: int
    descriptor: npt.NDArray[np.float32]  # 1-d, of the version's dimension
    list_ids: tuple[str, ...] = ()  # candidates: the faces of these lists...
    face_ids: tuple[str, ...] = ()  # ...and these faces (both empty: no candidates, no matches)
    limit: int = 5
    threshold: float = -1.0


class GalleryIndex:
    """Every account's faces: one face table, one store per version, one lock. Searches may run
    in worker threads while changes are applied on another."""

    def __init__(self) -> None:
        self.changes = 0  # counts applied changes, for views derived from the faces
        self._lock = ReadWriteLock()
        self._table = FaceTable()
        self._stores: dict[int, Store] = {}
        self._faces_of: Counter[str] = Counter()  # account -> its number of faces
        self._with_versions: Counter[frozenset[int]] = Counter()  # versions -> faces having them
        self._user_data: dict[str, str] = {}  # only the faces that have some
        self._list_owners: dict[str, str] = {}  # list -> account, from the lists topic

    def __len__(self) -> int:
        return len(self._table)

    def coverage(self, account_id: str, version: int) -> tuple[int, int]:
        """(faces of the account with a descriptor of `version`, faces of the account)."""
        store = self._stores.get(version)
        return (store.sizes.get(account_id, 0) if store else 0), self._faces_of[account_id]

    def versions_lacking(self, version: int) -> set[int]:
        """The versions that faces without a `version` descriptor have: while any such face
        exists, events need those versions too to be matched against it. Called from stage
        threads while faces are applied: tuple() copies the keys in one step under the GIL."""
        present = tuple(self._with_versions)
        return {v for versions in present if version not in versions for v in versions}

    def serving_version(self, account_id: str, versions: list[int]) -> int:
        """The first of `versions` (the event's, preferred first) whose gallery holds every face
        of the account; failing that, the one holding the most. A match never mixes versions."""
        best, best_have = versions[0], -1
        for version in versions:
            have, total = self.coverage(account_id, version)
            if have == total:
                return version
            if have > best_have:
                best, best_have = version, have
        return best

    def face_owner(self, face_id: str) -> str | None:
        slot = self._table.find(face_id)
        return None if slot is None else str(self._table.groups[slot])

    def list_owner(self, list_id: str) -> str | None:
        return self._list_owners.get(list_id)

    def apply(self, face_id: str, face: Face | None) -> None:
        """An upsert from a Face record, or a removal for a tombstone (None). A record that
        cannot be applied raises InvalidRecord before anything changes."""
        for _, invalid in self.apply_many([(face_id, face)]):
            raise invalid

    def apply_many(
        self, changes: Sequence[tuple[str, Face | None]]
    ) -> list[tuple[int, InvalidRecord]]:
        """Upserts (Face records) and removals (None: tombstones) by face id: see
        apply_changes."""
        return self.apply_changes(FaceChanges.of(changes))

    def apply_changes(self, changes: FaceChanges) -> list[tuple[int, InvalidRecord]]:
        """The outcome of applying the changes one by one in their order, as one change under
        the lock. Returns those refused (their index, why), each leaving its face as it was. A
        whole fetch costs a few array operations per version and store, not a pass per face of
        each."""
        refused = changes.checked.refused
        ids, accounts = changes.face_ids, changes.accounts
        last = {face_id: i for i, face_id in enumerate(ids) if i not in refused}
        with self._lock.writing():
            self.changes += len(ids) - len(refused)
            kept: list[int] = []  # the upserts, by index of their change...
            slots: list[int] = []  # ...their slots, -1 for a new face
            for face_id, i in last.items():
                account = accounts[i]
                slot = self._table.find(face_id)
                if slot is not None and (account is None or self._table.groups[slot] != account):
                    self._remove(face_id, slot)
                    slot = None
                if account is None:
                    continue
                if slot is not None:
                    self._forget_versions(slot)
                kept.append(i)
                slots.append(-1 if slot is None else slot)
            self._upsert(changes, kept, np.array(slots, np.int64))
        return sorted(refused.items())

    def _upsert(self, changes: FaceChanges, kept: list[int], slots: npt.NDArray[np.int64]) -> None:
        checked = changes.checked
        new = np.flatnonzero(slots < 0).tolist()
        if new:
            accounts = [cast(str, changes.accounts[kept[j]]) for j in new]
            slots[new] = self._table.add_many([changes.face_ids[kept[j]] for j in new], accounts)
            self._faces_of.update(accounts)
        sets: dict[tuple[str, ...], frozenset[str]] = {}  # one set per distinct list of lists
        lists = [sets.setdefault(changes.lists[i], frozenset(changes.lists[i])) for i in kept]
        versions = [checked.rows[i] for i in kept]
        for version in set(self._stores) | set(checked.matrices):
            having = [j for j, rows in enumerate(versions) if version in rows]
            if version not in self._stores:
                dimension = checked.matrices[version].shape[1]
                self._stores[version] = Store(dimension, self._table, self._lock)
            store = self._stores[version]
            for j, rows in enumerate(versions):
                if version not in rows and slots[j] in store:
                    store.drop(int(slots[j]))
            if having:
                store.put_many(
                    slots[having],
                    [lists[j] for j in having],
                    checked.matrices[version][[versions[j][version] for j in having]],
                )
        self._with_versions.update(frozenset(rows) for rows in versions)
        for i in kept:
            face_id, user_data = changes.face_ids[i], changes.user_data[i]
            if user_data is None:
                self._user_data.pop(face_id, None)
            else:
                self._user_data[face_id] = user_data

    def apply_list(self, list_id: str, record: List | None) -> None:
        """Who owns a list (None: deleted), so that no account enrolls into another's list."""
        if record is None:
            self._list_owners.pop(list_id, None)
        else:
            self._list_owners[list_id] = list_owner(record)

    def _forget_versions(self, slot: int) -> None:
        versions = frozenset(v for v, store in self._stores.items() if slot in store)
        self._with_versions[versions] -= 1
        if not self._with_versions[versions]:
            del self._with_versions[versions]

    def _remove(self, face_id: str, slot: int) -> None:
        self._faces_of[str(self._table.groups[slot])] -= 1
        self._forget_versions(slot)
        for store in self._stores.values():
            store.drop(slot)
        self._table.remove(face_id)
        self._user_data.pop(face_id, None)

    def search_batch(self, requests: Sequence[SearchRequest]) -> list[list[Match]]:
        """Per request, its best matches, best first, at most `limit`, at or above `threshold`;
        a face in several of the lists counts once. Requests over the same account, version and
        candidates are searched together in one matrix product. Safe to call from a worker
        thread while apply()/apply_list() run on another."""
        groups: dict[tuple[str, int, frozenset[str], frozenset[str]], list[int]] = {}
        for i, request in enumerate(requests):
            key = (
                request.account_id,
                request.version,
                frozenset(request.list_ids),
                frozenset(request.face_ids),
            )
            groups.setdefault(key, []).append(i)
        results: list[list[Match]] = [[] for _ in requests]
        for (account, version, lists, faces), members in groups.items():
            store = self._stores.get(version)
            if store is None or not (lists or faces):
                continue
            found = store.search(
                np.stack([requests[i].descriptor for i in members]),
                group=account,
                list_ids=sorted(lists),
                face_ids=sorted(faces),
                limit=max(requests[i].limit for i in members),
                threshold=min(requests[i].threshold for i in members),
            )
            for i, matches in zip(members, found, strict=True):
                request = requests[i]
                results[i] = [
                    {
                        "face_id": m.face_id,
                        "similarity": m.similarity,
                        "user_data": self._user_data.get(m.face_id),
                    }
                    for m in matches[: request.limit]
                    if m.similarity >= request.threshold
                ]
        return results
