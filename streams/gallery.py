"""The matcher workers' view of the compacted faces topic: one gallery per account and version.

Accounts never share a gallery, so one account can never match another's faces, and a gallery
holds one descriptor version, so a match never compares descriptors of different versions.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import numpy.typing as npt

from processors.matcher import Gallery

Record = dict[str, Any]


class GalleryIndex:
    def __init__(self) -> None:
        self.changes = 0  # counts applied changes, for views derived from the faces
        self._galleries: dict[tuple[str, int], Gallery] = {}
        self._owners: dict[str, tuple[str, list[int]]] = {}  # face -> account, versions
        self._faces_of: Counter[str] = Counter()  # account -> its number of faces
        self._user_data: dict[str, str | None] = {}

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

    def apply(self, face_id: str, face: Record | None) -> None:
        """An upsert from a Face record, or a removal for a tombstone (None)."""
        self.changes += 1
        self._remove(face_id)
        if face is None:
            return
        account = face["account_id"]
        lists = frozenset(face["list_ids"])
        versions = []
        for descriptor in face["descriptors"]:
            vector = np.frombuffer(descriptor["vector"], dtype="<f4")
            key = (account, descriptor["version"])
            gallery = self._galleries.get(key)
            if gallery is None:
                gallery = self._galleries[key] = Gallery(vector.shape[0])
            gallery.upsert(face_id, vector, lists)
            versions.append(descriptor["version"])
        self._owners[face_id] = (account, versions)
        self._faces_of[account] += 1
        self._user_data[face_id] = face["user_data"]

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
    ) -> list[Record]:
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
