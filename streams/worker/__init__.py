"""The worker process: Faust agents that run the stages under one runner, and the stream replay."""
