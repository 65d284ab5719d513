"""Pure compute: detector, liveness, aligner, extractors and matcher over onnxruntime.

Nothing in this package talks to Kafka, a database or the network.
"""
