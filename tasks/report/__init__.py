"""Self-contained HTML reports of runs in the artifact store (``trustflow report``).

``build_run_report`` renders one run with its flow's section renderer
(``sections.RUN_SECTIONS``); ``build_leaderboard_report`` renders every flow's combined
view (``sections.BOARD_SECTIONS``); ``write_report`` puts a page on disk atomically.
"""

from __future__ import annotations

from trustflow.tasks.report.build import (
    LEADERBOARD_TARGET,
    build_leaderboard_report,
    build_run_report,
    find_run,
    write_report,
)

__all__ = ["LEADERBOARD_TARGET", "build_leaderboard_report", "build_run_report", "find_run", "write_report"]
