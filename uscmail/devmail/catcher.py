"""An aiosmtpd server that writes every message it receives to DEV_MAIL_DIR as an .eml file."""

import argparse
import time
import uuid
from pathlib import Path

from aiosmtpd.controller import Controller


class FileHandler:
    """aiosmtpd handler that stores each message as <time>-<random>.eml."""

    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
        (self.directory / name).write_bytes(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


def main() -> None:
    """Run the catcher until interrupted."""
    parser = argparse.ArgumentParser(description="Development mail catcher")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--directory", type=Path, required=True)
    args = parser.parse_args()
    controller = Controller(
        FileHandler(args.directory),
        hostname=args.host,
        port=args.port,
        enable_SMTPUTF8=True,
    )
    controller.start()
    print(
        f"mail catcher listening on {args.host}:{args.port}, keeping mail in {args.directory}",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
