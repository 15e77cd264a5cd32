"""The streaming side of interest-stream: the Faust app, its agents, the CLI."""
