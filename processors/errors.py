"""Errors the compute layer raises for bad input; `code` is what reaches users and dead letters."""

from __future__ import annotations


class ProcessingError(Exception):
    """A per-message failure: the message is rejected, the process keeps running."""

    code = "processing_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0])


class ImageError(ProcessingError):
    """The bytes are not an image we accept: empty, undecodable, truncated or over a limit."""

    code = "bad_image"
