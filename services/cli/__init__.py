"""The `fedchain` command: one typer app, one module per command group."""
