"""Reading a command's stderr as a test does: the problem it reported, apart from its log records."""

from __future__ import annotations

import re

LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING) ")


def problem(stderr: str) -> str:
    """stderr without the timestamped log records (off a terminal every phase is one): what is left
    is what the command said went wrong, which must be one line."""
    return "\n".join(line for line in stderr.strip().splitlines() if not LOG_RECORD.match(line))
