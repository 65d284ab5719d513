"""The matchers' follower of the faces and lists topics: it loads them into the gallery, then
keeps it up to date, applying off the event loop."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from streams.kafka import topics
from streams.kafka.gallery import GalleryIndex, release_freed_memory
from streams.kafka.reader import Message, TopicReader, caught_up, keep_following
from streams.settings import Settings

log = logging.getLogger(__name__)

WAIT_S = 0.2  # the longest a read of faces waits for more


class GalleryFollower:
    """Reads the whole compacted faces and lists topics, then follows them; every matcher has
    them all (the lists' owners: no account enrolls into another's list). Sets `loaded` once
    all that was there at the start is applied. Records it cannot apply are skipped; if it
    fails otherwise it starts again, never left dead.

    Each batch is decoded and applied in a thread of the gallery's own, off the event loop (an
    apply waits on the gallery's lock while searches run), the next batch fetched meanwhile.
    One thread applies the batches in the order read, across restarts too."""

    def __init__(self, settings: Settings, gallery: GalleryIndex, loaded: asyncio.Event) -> None:
        self.settings = settings
        self.gallery = gallery
        self.loaded = loaded
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gallery")

    async def follow(self) -> None:
        await keep_following("gallery", self._follow)

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        async with (
            TopicReader(self.settings, topics.FACES, from_beginning=True) as faces,
            TopicReader(self.settings, topics.LISTS, from_beginning=True) as lists,
        ):
            applying: asyncio.Future[None] | None = None
            while True:
                # All read so far is in the thread's hands: loaded once that is applied.
                if not self.loaded.is_set() and await caught_up(faces, lists):
                    if applying is not None:
                        await applying
                    await loop.run_in_executor(self._thread, release_freed_memory)
                    log.info("gallery loaded: %d faces", len(self.gallery))
                    self.loaded.set()
                face_records = await faces.read_raw(timeout=WAIT_S)
                list_records = await lists.read_raw(timeout=0)  # never waits on quiet lists
                if applying is not None:
                    await applying
                if face_records or list_records:
                    applying = loop.run_in_executor(
                        self._thread, self._apply, faces, face_records, lists, list_records
                    )

    def _apply(
        self,
        faces: TopicReader,
        face_records: list[Message],
        lists: TopicReader,
        list_records: list[Message],
    ) -> None:
        gallery = self.gallery
        decoded = faces.decode(face_records)
        try:
            refused = gallery.apply_many([(key or "", face) for _, key, face in decoded])
        except Exception:  # a bug shown by some record: find it, applying one at a time
            faces.apply_decoded(decoded, lambda key, face, _: gallery.apply(key, face))
        else:
            for i, invalid in refused:
                faces.skip(decoded[i][0], str(invalid))
        lists.apply_decoded(
            lists.decode(list_records), lambda key, lst, _: gallery.apply_list(key, lst)
        )
