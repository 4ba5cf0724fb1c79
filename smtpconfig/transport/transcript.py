"""What a session records for people to read: its lines, with AUTH masked."""

from __future__ import annotations

import enum
from dataclasses import dataclass

# What stands in for the password in transcripts and in every redacted server text.
MASK = "********"


class Direction(enum.StrEnum):
    CLIENT = "client"
    SERVER = "server"
    # Notes of our own (connecting, TLS established, exit status), not protocol lines.
    INFO = "info"


@dataclass(frozen=True)
class TranscriptLine:
    direction: Direction
    text: str
