"""Run a mail service in a child process (so a test can kill -9 it): python -m tests.services.mail.child DIR.

Reads the configuration document (JSON) on stdin's first line, prints its ports as JSON, runs until killed
or until stdin closes."""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from appliance import schema
from appliance.context import Context
from services.mail import MailService


async def main(data_dir: str) -> None:
    config = schema.parse(json.loads(sys.stdin.readline()))
    service = MailService(Context(Path(data_dir), lab=True))
    await service.start(config)
    print(json.dumps(service.ports), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await service.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
