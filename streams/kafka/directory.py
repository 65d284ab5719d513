"""Known faces and lists as the compacted topics say they are, kept in memory by each API
process (and matchable through its gallery); updated by the process's own writes at once and by
everyone's through the topics."""

from __future__ import annotations

import asyncio
import logging

from schemas.records import Face, List
from streams.kafka import topics
from streams.kafka.gallery import GalleryIndex, face_vectors, list_owner, release_freed_memory
from streams.kafka.reader import TopicReader, caught_up, keep_following
from streams.settings import Settings

log = logging.getLogger(__name__)
APPLY_SLICE = 1000  # faces applied between two turns of the event loop while loading


class Directory:
    def __init__(self) -> None:
        self.faces: dict[str, Face] = {}
        self._by_sample: dict[str, set[str]] = {}  # sample id -> ids of faces made from it
        self.lists: dict[str, List] = {}
        self.gallery = GalleryIndex()
        self.ready = asyncio.Event()
        # The offset of the newest version applied per key: a process applies its own writes at
        # once, and the older versions it then reads back from the topic must not undo them.
        self._offsets: dict[tuple[str, str], int] = {}

    def _newer(self, kind: str, key: str, offset: int) -> bool:
        if offset <= self._offsets.get((kind, key), -1):
            return False
        self._offsets[(kind, key)] = offset
        return True

    def apply_face(self, face_id: str, face: Face | None, offset: int) -> None:
        """Raises InvalidRecord, before anything changes, for a face that cannot be applied."""
        if face is not None:
            face_vectors(face)
        if not self._newer("face", face_id, offset):
            return
        old = self.faces.pop(face_id, None)
        if old is not None and old["sample_id"] is not None:
            self._by_sample.get(old["sample_id"], set()).discard(face_id)
        if face is not None:
            self.faces[face_id] = face
            if face["sample_id"] is not None:
                self._by_sample.setdefault(face["sample_id"], set()).add(face_id)
        self.gallery.apply(face_id, face)

    def apply_list(self, list_id: str, record: List | None, offset: int) -> None:
        if record is not None:
            list_owner(record)
        if not self._newer("list", list_id, offset):
            return
        if record is None:
            self.lists.pop(list_id, None)
        else:
            self.lists[list_id] = record

    def find_face(self, account_id: str, face_id: str) -> Face | None:
        face = self.faces.get(face_id)
        return face if face is not None and face["account_id"] == account_id else None

    def find_list(self, account_id: str, list_id: str) -> List | None:
        record = self.lists.get(list_id)
        return record if record is not None and record["account_id"] == account_id else None

    def faces_with_sample(self, sample_id: str) -> list[Face]:
        return [self.faces[face_id] for face_id in self._by_sample.get(sample_id, ())]

    def faces_in(self, account_id: str, list_id: str) -> list[Face]:
        """The account's faces in the list: a face enrolled through Kafka may name any list id,
        and only faces of the list's own account belong in it."""
        return [
            f
            for f in self.faces.values()
            if f["account_id"] == account_id and list_id in f["list_ids"]
        ]

    async def follow(self, settings: Settings) -> None:
        """Loads both topics from the beginning, then follows them; sets `ready` once loaded.
        Started again after a failure (a broker outage), never left dead."""
        await keep_following("directory", lambda: self._follow(settings))

    async def _follow(self, settings: Settings) -> None:
        async with (
            TopicReader(settings, topics.FACES, from_beginning=True) as faces,
            TopicReader(settings, topics.LISTS, from_beginning=True) as lists,
        ):
            while True:
                # Checked before reading: empty topics are loaded at once, not after two waits.
                if not self.ready.is_set() and await caught_up(faces, lists):
                    await asyncio.to_thread(release_freed_memory)
                    log.info(
                        "directory loaded: %d faces, %d lists", len(self.faces), len(self.lists)
                    )
                    self.ready.set()
                # A whole fetch at a time, decoded off the event loop; applied on it, where the
                # requests read the dicts, in slices so that they get their turn meanwhile.
                decoded = await asyncio.to_thread(faces.decode, await faces.read_raw(timeout=0.1))
                for start in range(0, len(decoded), APPLY_SLICE):
                    faces.apply_decoded(decoded[start : start + APPLY_SLICE], self.apply_face)
                    await asyncio.sleep(0)
                await lists.apply_each(self.apply_list, timeout=0)  # never waits on quiet lists
