"""What comfycheck's commands exit with, one meaning per code across them all (pytest, the load and class runs,
the soak, the stack and the history), so that a scheduler can act on it without knowing which command ran."""
from __future__ import annotations

OK = 0  # every target met (`stack status`: the stack runs)
MISSED = 1  # a target missed or a check failed (`stack status`: the stack does not run)
CANNOT_RUN = 2  # nothing was judged: a bad profile, option or workflow, an unreachable address, a stack that failed
NOT_KEPT = 3  # the run was judged but could not be kept in the history; its report says how to keep it later
USAGE = 4  # pytest's own, run directly: an option or an output path it cannot use (the comfycheck command: 2)

MEANINGS = {OK: "every target met", MISSED: "a target missed or a check failed",
            CANNOT_RUN: "could not run: bad input or an unreachable address, nothing judged",
            NOT_KEPT: "judged, but not kept in the history", USAGE: "refused before any check ran: a bad option"}
