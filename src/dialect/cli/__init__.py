"""The `dialect` command: one module per command group, argument parsing only."""
