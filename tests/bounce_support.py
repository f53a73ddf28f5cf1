"""The bounce receiver as its own process (`flask --app uscmail bounces serve`), and bounce mail to send it."""

import contextlib
import os
import re
import smtplib
import socket
import subprocess
import sys
from pathlib import Path

from tests.waiting import wait_until

FIXTURES = Path(__file__).parent / "fixtures" / "bounces"
PROJECT_DIR = Path(__file__).resolve().parent.parent


def fixture(name: str) -> bytes:
    """A real bounce from tests/fixtures/bounces, with CRLF line endings as it travels over SMTP."""
    return re.sub(rb"\r?\n", b"\r\n", (FIXTURES / f"{name}.txt").read_bytes())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BounceReceiver:
    """`flask --app uscmail bounces serve` on a free port, with the test run's settings."""

    def __init__(self, log_path: Path, processes: int = 1, **env: str):
        self.port = free_port()
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "uscmail", "bounces", "serve",
             "--port", str(self.port), "--processes", str(processes)],
            cwd=PROJECT_DIR, env={**os.environ, **env}, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        wait_until(self.listening, 30, "the bounce receiver to listen")

    def listening(self) -> bool:
        assert self.process.poll() is None, self.log_path.read_text(errors="replace")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True
        return False

    def send(self, recipients: list[str], raw: bytes, mail_from: str = "") -> dict:
        """Deliver `raw` as an MTA delivers a bounce: null sender, our return path(s) as recipients."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as connection:
            return connection.sendmail(mail_from, recipients, raw)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()
        self._log.close()


def arf_report(original: bytes, feedback_type: str = "abuse", agent: str = "Yahoo!-Mail-Feedback/2.0") -> bytes:
    """A complaint as RFC 5965 shapes it (Appendix B's example; Yahoo's and Microsoft's feedback loops send the
    same): a human-readable part, the machine-readable message/feedback-report, and the original as received."""
    head = (
        "From: <feedback@arf.mail.example.net>\r\n"
        "To: <abuse@uscuk.test>\r\n"
        "Subject: FW: Solidarity news\r\n"
        "Date: Sat, 05 Dec 2026 10:00:00 +0000\r\n"
        "Message-ID: <arf-1@arf.mail.example.net>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report;\r\n boundary="part1_13d.2e68ed54_boundary"\r\n'
        "\r\n"
        "--part1_13d.2e68ed54_boundary\r\n"
        'Content-Type: text/plain; charset="US-ASCII"\r\n'
        "Content-Transfer-Encoding: 7bit\r\n\r\n"
        "This is an email abuse report for an email message received from IP\r\n"
        "192.0.2.1 on Sat, 5 Dec 2026 09:59:00 +0000.\r\n"
        "For more information about this format please see http://www.mipassoc.org/arf/.\r\n\r\n"
        "--part1_13d.2e68ed54_boundary\r\n"
        "Content-Type: message/feedback-report\r\n"
        "Content-Transfer-Encoding: 7bit\r\n"
        "Content-Disposition: inline\r\n\r\n"
        f"Feedback-Type: {feedback_type}\r\n"
        f"User-Agent: {agent}\r\n"
        "Version: 0.1\r\n"  # Yahoo's, to this day
        "Original-Mail-From: <news@uscuk.test>\r\n"
        "Original-Rcpt-To: [redacted]\r\n"
        "Received-Date: Sat, 05 Dec 2026 09:59:00 +0000\r\n"
        "Reported-Domain: uscuk.test\r\n"
        "Authentication-Results: authentication result string is not available\r\n\r\n"
        "--part1_13d.2e68ed54_boundary\r\n"
        "Content-Type: message/rfc822\r\n"
        "Content-Disposition: inline\r\n\r\n"
    )
    return head.encode() + original.rstrip(b"\r\n") + b"\r\n--part1_13d.2e68ed54_boundary--\r\n"
