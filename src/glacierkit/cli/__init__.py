"""Command-line interface (typer). Only this package turns errors into exit codes."""
