"""Time the console on a long finished run, headless (Pilot); bench.tui_load runs this file in the
checkout under test (that checkout is the working directory, so its `tui` is the one imported).

usage: python -c "import runpy; runpy.run_path('bench/_chart_probe.py', run_name='__main__')" WORKSPACE ROWS
Prints one JSON line: seconds from app start to the first frame, to the loss chart drawn with every
row (the preview, sampled as the chart's store keeps them), and to the exact store (every row parsed) drawn.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path


async def time_to_chart(ws: Path, rows: int) -> tuple[float, float, float]:
    from ftmodel import config
    from tui.app import FtmodelConsole

    t0 = time.perf_counter()
    app = FtmodelConsole(config.load("configs/default.toml"), "configs/default.toml", ws, gpu=False)
    async with app.run_test(size=(100, 30)) as pilot:
        first = time.perf_counter() - t0
        drawn: dict[int, float] = {}  # id(store) -> when its loss chart was drawn
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            panel = app.query_one("#panel-loss")
            store = app.main.store
            if store.rows == rows and app.main.charts_ready and panel.drawn_version == store.version:
                drawn.setdefault(id(store), time.perf_counter() - t0)
                # The reader is done when nothing is left to parse: no exact pass pending.
                follower = app.main.follower
                if (
                    follower is not None
                    and not follower.history_pending()
                    and follower.caught_up()
                    and app.main.history_complete
                ):
                    times = sorted(drawn.values())
                    return first, times[0], times[-1]
            await pilot.pause(0.01)
    raise TimeoutError("the chart never drew")


if __name__ == "__main__":
    print(json.dumps(asyncio.run(time_to_chart(Path(sys.argv[1]), int(sys.argv[2])))))
