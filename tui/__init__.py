"""ftmodel-tui: the terminal console that launches stages and watches their run directories."""
