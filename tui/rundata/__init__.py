"""What the console reads from run directories, as plain Python (no Textual, no ML stack).

Everything here runs in thread workers and is tested without a terminal: bounded metric series
(`series`), run summaries and the stage list (`summary`), tailing a run (`follower`), the runs
browser's rows (`table`), GRPO completions (`completions`) and GRPO health hints (`health`).
"""
