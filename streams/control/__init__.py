"""Process control: the config topic, live reload, monitoring, the supervisor, and starting
processes (as the CLI, the tests and the benchmarks do)."""
