"""The Faust app, topics, agents, CLI: moves data between processors and sinks, owns no math."""
