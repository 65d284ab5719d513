"""Test doubles shared by the unit tests."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from processors.types import ModelSession


class CountingSession:
    """Passes runs through to the real session, noting each run's batch shape and dtype."""

    def __init__(self, inner: ModelSession) -> None:
        self.inner = inner
        self.batches: list[tuple[tuple[int, ...], np.dtype[np.generic]]] = []

    @property
    def runs(self) -> int:
        return len(self.batches)

    def run(
        self, output_names: list[str] | None, input_feed: dict[str, npt.NDArray[np.generic]]
    ) -> list[npt.NDArray[np.generic]]:
        (batch,) = input_feed.values()  # every model here has one input
        self.batches.append((batch.shape, batch.dtype))
        return self.inner.run(output_names, input_feed)

    def get_inputs(self) -> list[object]:
        return self.inner.get_inputs()
