"""What every process uses of Kafka: the topics and their contracts, followers of topics, image
sends with claim checks, and the in-memory views of the compacted faces and lists topics."""
