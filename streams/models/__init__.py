"""The models: pulled and verified once (`facestream models pull`), opened by the processes."""
