"""The HTTP API (Starlette): ingest, events, lists, faces, matching, liveness."""
