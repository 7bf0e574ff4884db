"""Start Squid in the foreground for the supervisor: prepare its tree, then exec `squid -N`.

    python -m services.proxy.launch <squid.conf> <instance> <work dir> [--cache-mb N]

- the work dir (cache/, logs/) belongs to the proxy user, which Squid switches to; the data
  directory (mode 0700) gets a POSIX ACL entry letting that user traverse it, nothing more;
- shared-memory segments left by a Squid that died are removed (they would stop the next start);
- the block pages and hosts file are copied into the work dir (Squid reads them as the proxy user);
- the cache directories are created (`squid -z`) when missing.
--cache-mb only makes the argv change with the cache size, so the supervisor restarts Squid then
(a cache_dir change needs a restart, not a reconfigure).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from services.proxy.files import clean_shm, prepare, publish_pages


def main(argv: list[str]) -> None:
    conf, instance, work = argv[0], argv[1], Path(argv[2])
    os.umask(0o027)  # the appliance runs with a strict umask; Squid's own tree needs usable modes
    prepare(work)
    publish_pages(Path(conf).parent, work)
    clean_shm(instance)
    if not (work / "cache" / "0F").is_dir() and "cache_dir " in Path(conf).read_text():  # L1 = 16: 00..0F
        subprocess.run(["squid", "-N", "-z", "-n", instance, "-f", conf], check=True, timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        clean_shm(instance)
    sys.stdout.flush()
    os.execvp("squid", ["squid", "-N", "-n", instance, "-f", conf])


if __name__ == "__main__":
    main(sys.argv[1:])
