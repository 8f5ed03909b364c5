"""Question data: the built-in finance bank and loaders for user data."""
