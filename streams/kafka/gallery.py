"""The matcher workers' view of the compacted faces topic: one gallery per account and version.

Accounts never share a gallery, so one account can never match another's faces, and a gallery
holds one descriptor version, so a match never compares descriptors of different versions.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import numpy.typing as npt

from processors.matcher import Gallery
from schemas.records import Face, List, Match
from streams.models.modelset import DESCRIPTOR_BYTES

Vectors = dict[int, npt.NDArray[np.float32]]


class InvalidRecord(ValueError):
    """A Face or List record that decodes but cannot be applied; its previous state stays."""


def face_vectors(face: Face) -> Vectors:
    """The face's descriptors by version, each checked: a known version, its dimension, finite
    values, not all zeros; or InvalidRecord saying what is wrong."""
    if not face["account_id"]:
        raise InvalidRecord("the face has no account id")
    vectors: Vectors = {}
    for descriptor in face["descriptors"]:
        version, data = descriptor["version"], descriptor["vector"]
        size = DESCRIPTOR_BYTES.get(version)
        if size is None:
            raise InvalidRecord(f"unknown descriptor version {version}")
        if version in vectors:
            raise InvalidRecord(f"two descriptors of version {version}")
        if len(data) != size:
            raise InvalidRecord(f"a version {version} descriptor of {len(data)} bytes, not {size}")
        vector = np.frombuffer(data, dtype="<f4")
        if not np.isfinite(vector).all() or not vector.any():
            raise InvalidRecord(f"a version {version} descriptor that is not finite or all zeros")
        vectors[version] = vector
    return vectors


def list_owner(record: List) -> str:
    if not record["account_id"]:
        raise InvalidRecord("the list has no account id")
    return record["account_id"]


class GalleryIndex:
    def __init__(self) -> None:
        self.changes = 0  # counts applied changes, for views derived from the faces
        self._galleries: dict[tuple[str, int], Gallery] = {}
        self._owners: dict[str, tuple[str, list[int]]] = {}  # face -> account, versions
        self._faces_of: Counter[str] = Counter()  # account -> its number of faces
        self._user_data: dict[str, str | None] = {}
        self._list_owners: dict[str, str] = {}  # list -> account, from the lists topic

    def __len__(self) -> int:
        return len(self._owners)

    def coverage(self, account_id: str, version: int) -> tuple[int, int]:
        """(faces of the account with a descriptor of `version`, faces of the account)."""
        gallery = self._galleries.get((account_id, version))
        return (len(gallery) if gallery else 0), self._faces_of[account_id]

    def versions_lacking(self, version: int) -> set[int]:
        """The versions that faces without a `version` descriptor have: while any such face
        exists, events need those versions too to be matched against it."""
        return {
            v for _, versions in self._owners.values() if version not in versions for v in versions
        }

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
        owner = self._owners.get(face_id)
        return None if owner is None else owner[0]

    def list_owner(self, list_id: str) -> str | None:
        return self._list_owners.get(list_id)

    def apply(self, face_id: str, face: Face | None) -> None:
        """An upsert from a Face record, or a removal for a tombstone (None). A record that
        cannot be applied raises InvalidRecord before anything changes."""
        vectors = None if face is None else face_vectors(face)
        self.changes += 1
        self._remove(face_id)
        if face is None or vectors is None:
            return
        account = face["account_id"]
        lists = frozenset(face["list_ids"])
        for version, vector in vectors.items():
            gallery = self._galleries.get((account, version))
            if gallery is None:
                gallery = self._galleries[account, version] = Gallery(vector.shape[0])
            gallery.upsert(face_id, vector, lists)
        self._owners[face_id] = (account, list(vectors))
        self._faces_of[account] += 1
        self._user_data[face_id] = face["user_data"]

    def apply_list(self, list_id: str, record: List | None) -> None:
        """Who owns a list (None: deleted), so that no account enrolls into another's list."""
        if record is None:
            self._list_owners.pop(list_id, None)
        else:
            self._list_owners[list_id] = list_owner(record)

    def _remove(self, face_id: str) -> None:
        owner = self._owners.pop(face_id, None)
        if owner is None:
            return
        account, versions = owner
        self._faces_of[account] -= 1
        for version in versions:
            self._galleries[(account, version)].remove(face_id)
        self._user_data.pop(face_id, None)

    def search(
        self,
        account_id: str,
        version: int,
        descriptor: npt.NDArray[np.float32],
        *,
        list_ids: list[str],
        limit: int,
        threshold: float,
    ) -> list[Match]:
        """Best matches over the given lists, best first, at most `limit`."""
        gallery = self._galleries.get((account_id, version))
        if gallery is None or not len(gallery):
            return []
        found: dict[str, float] = {}
        for list_id in list_ids:
            (matches,) = gallery.search(
                descriptor[None, :], list_id=list_id, limit=limit, threshold=threshold
            )
            for match in matches:
                found[match.face_id] = max(found.get(match.face_id, -1.0), match.similarity)
        best = sorted(found.items(), key=lambda item: item[1], reverse=True)[:limit]
        return [
            {"face_id": face_id, "similarity": similarity, "user_data": self._user_data[face_id]}
            for face_id, similarity in best
        ]
