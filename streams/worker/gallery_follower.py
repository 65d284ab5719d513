"""The matchers' follower of the faces and lists topics: it loads them into the gallery, then
keeps it up to date, applying off the event loop."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections import deque
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor

from streams.kafka import topics
from streams.kafka.gallery import FaceChanges, GalleryIndex, release_freed_memory
from streams.kafka.reader import (
    Message,
    TopicReader,
    caught_up,
    decode_records,
    keep_following,
)
from streams.settings import Settings

log = logging.getLogger(__name__)

WAIT_S = 0.2  # the longest a read of faces waits for more
# A load of at least this many faces is decoded by processes of its own: decoding is most of a
# load's time, and a process pool costs about a second to start.
DECODERS_FROM = 50_000
DECODERS = max(1, min(4, (os.cpu_count() or 2) - 1))
DECODING_AHEAD = 3  # fetches a pool may be decoding while the gallery applies the one before

Raw = list[tuple[bytes | None, bytes | None]]  # (key, value) of each message of a fetch


class DecodedFetch:
    """A fetch of the faces topic as changes to the gallery: the index in the fetch of each
    change, and why the other messages were skipped."""

    def __init__(self, raw: Raw) -> None:
        decoded, self.skipped = decode_records(topics.FACES, raw)
        self.positions = [i for i, _, _ in decoded]
        self.changes = FaceChanges.of([(face_id or "", face) for _, face_id, face in decoded])


class GalleryFollower:
    """Reads the whole compacted faces and lists topics, then follows them; every matcher has
    them all (the lists' owners: no account enrolls into another's list). Sets `loaded` once
    all that was there at the start is applied. Records it cannot apply are skipped; if it
    fails otherwise it starts again, never left dead.

    Each fetch is applied in a thread of the gallery's own, off the event loop (an apply waits
    on the gallery's lock while searches run), the next one fetched meanwhile; one thread
    applies the fetches in the order read, across restarts too. A large load is decoded by a
    pool of processes (a fetch at a time, a few ahead of the gallery, which gets the faces as
    columns), closed once loaded; after that each fetch is decoded in the gallery's thread."""

    def __init__(self, settings: Settings, gallery: GalleryIndex, loaded: asyncio.Event) -> None:
        self.settings = settings
        self.gallery = gallery
        self.loaded = loaded
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gallery")

    async def follow(self) -> None:
        await keep_following("gallery", self._follow)

    async def _follow(self) -> None:
        async with (
            TopicReader(self.settings, topics.FACES, from_beginning=True) as faces,
            TopicReader(self.settings, topics.LISTS, from_beginning=True) as lists,
        ):
            decoders: Executor | None = None
            backlog = 0 if self.loaded.is_set() else await faces.backlog()
            if backlog >= DECODERS_FROM:
                log.info("loading %d faces, decoded by %d processes", backlog, DECODERS)
                context = multiprocessing.get_context("spawn")  # never a fork of this process
                decoders = ProcessPoolExecutor(DECODERS, mp_context=context)
            try:
                await self._run(faces, lists, decoders)
            finally:
                if decoders is not None:
                    decoders.shutdown(wait=False, cancel_futures=True)

    async def _run(self, faces: TopicReader, lists: TopicReader, decoders: Executor | None) -> None:
        in_flight: deque[asyncio.Future[None]] = deque()
        while True:
            # All read so far is in hand: loaded once that is applied.
            if not self.loaded.is_set() and await caught_up(faces, lists):
                while in_flight:
                    await in_flight.popleft()
                await asyncio.get_running_loop().run_in_executor(self._thread, release_freed_memory)
                log.info("gallery loaded: %d faces", len(self.gallery))
                self.loaded.set()
                if decoders is not None:
                    decoders.shutdown(wait=False)
                    decoders = None
            face_records = await faces.read_raw(timeout=WAIT_S)
            list_records = await lists.read_raw(timeout=0)  # never waits on quiet lists
            while in_flight and (in_flight[0].done() or len(in_flight) >= self._ahead(decoders)):
                await in_flight.popleft()
            if face_records or list_records:
                previous = in_flight[-1] if in_flight else None
                in_flight.append(
                    asyncio.ensure_future(
                        self._apply(faces, face_records, lists, list_records, previous, decoders)
                    )
                )

    @staticmethod
    def _ahead(decoders: Executor | None) -> int:
        return DECODING_AHEAD if decoders is not None else 1

    async def _apply(
        self,
        faces: TopicReader,
        face_records: list[Message],
        lists: TopicReader,
        list_records: list[Message],
        previous: asyncio.Future[None] | None,
        decoders: Executor | None,
    ) -> None:
        """Decodes a fetch (in the pool, when there is one), then applies it in the gallery's
        thread once the fetch before it is applied."""
        loop = asyncio.get_running_loop()
        decoded = None
        if decoders is not None and face_records:
            raw = [(m.key, m.value) for m in face_records]
            decoded = await loop.run_in_executor(decoders, DecodedFetch, raw)
        if previous is not None:
            await previous
        await loop.run_in_executor(
            self._thread, self._apply_here, faces, face_records, decoded, lists, list_records
        )

    def _apply_here(
        self,
        faces: TopicReader,
        face_records: list[Message],
        decoded: DecodedFetch | None,
        lists: TopicReader,
        list_records: list[Message],
    ) -> None:
        gallery = self.gallery
        if decoded is None:
            decoded = DecodedFetch([(m.key, m.value) for m in face_records])
        try:
            refused = gallery.apply_changes(decoded.changes)
        except Exception:  # a bug shown by some record: find it, applying one at a time
            faces.apply_decoded(
                faces.decode(face_records), lambda key, face, _: gallery.apply(key, face)
            )
        else:
            for i, reason in decoded.skipped.items():
                faces.skip(face_records[i], reason)
            for j, invalid in refused:
                faces.skip(face_records[decoded.positions[j]], str(invalid))
        lists.apply_decoded(
            lists.decode(list_records), lambda key, lst, _: gallery.apply_list(key, lst)
        )
