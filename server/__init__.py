"""The top floor: HTTP, signalling, lessons, roles, tokens and the CLI."""
