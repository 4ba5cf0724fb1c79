"""Handing a mail to a local sendmail binary (no shell involved)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from django.utils.translation import gettext as _

from smtpconfig.transport.transcript import Direction, TranscriptLine

# sysexits.h: EX_TEMPFAIL, what sendmail returns when delivery should be retried later.
SENDMAIL_EX_TEMPFAIL = 75


class SendmailError(Exception):
    """The sendmail binary exited with a non-zero status."""

    def __init__(self, path: str, returncode: int, stderr_line: str):
        self.path = path
        self.returncode = returncode
        self.stderr_line = stderr_line
        detail = f": {stderr_line}" if stderr_line else ""
        super().__init__(f"{path} exited with status {returncode}{detail}")

    @property
    def temporary(self) -> bool:
        return self.returncode == SENDMAIL_EX_TEMPFAIL


class SendmailTimeout(TimeoutError):
    """The sendmail binary did not finish within the configuration's timeout."""


def run_sendmail(
    path: str,
    *,
    timeout: float,
    sender: str,
    recipients: Sequence[str],
    content: bytes,
    transcript: list[TranscriptLine] | None = None,
) -> int:
    """Pipe one ready-made message (bare envelope addresses) to sendmail; its exit status.

    Runs ``<path> -i -f <sender> -- <recipients…>``. Line ends may be CRLF, as on the
    wire: a local sendmail wants LF, so they are converted. A non-zero exit raises
    SendmailError with the first line of stderr (never the message).
    """

    def record(direction: Direction, text: str) -> None:
        if transcript is not None:
            transcript.append(TranscriptLine(direction, text))

    command = [path, "-i", "-f", sender, "--", *recipients]
    content = content.replace(b"\r\n", b"\n")
    record(Direction.CLIENT, " ".join(command))
    record(Direction.CLIENT, _("[message content, %(size)s bytes]") % {"size": len(content)})
    try:
        # A list of arguments and no shell: addresses cannot inject options or commands.
        completed = subprocess.run(  # noqa: S603
            command, input=content, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        record(Direction.INFO, _("No exit within %(seconds)s s") % {"seconds": timeout})
        raise SendmailTimeout(f"{path} did not finish in time") from None
    record(Direction.INFO, _("Exit status %(status)s") % {"status": completed.returncode})
    if completed.returncode != 0:
        stderr_line = _first_line(completed.stderr)
        if stderr_line:
            record(Direction.SERVER, stderr_line)
        raise SendmailError(path, completed.returncode, stderr_line)
    return completed.returncode


def check_sendmail_binary(path: str) -> tuple[bool, str]:
    """Whether ``path`` is an executable file, and a verdict saying so (it is not run)."""
    if not path:
        return False, _("No sendmail binary is configured.")
    if not os.path.isfile(path):
        return False, _("The sendmail binary %(path)s does not exist") % {"path": path}
    if not os.access(path, os.X_OK):
        return False, _("The sendmail binary %(path)s is not executable") % {"path": path}
    return True, _(
        "The sendmail binary %(path)s exists and is executable. This test does not run it; "
        "send a test mail to check delivery."
    ) % {"path": path}


def _first_line(output: bytes) -> str:
    for line in output.decode("utf-8", errors="replace").splitlines():
        if line.strip():
            return line.strip()[:500]
    return ""
