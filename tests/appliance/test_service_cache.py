"""A service process's cache folder: the PBX, as its own user, makes its prompts and hold music in
<data>/cache/pbx (services/pbx/prompts, moh.py); prepare() hands that folder to it like state/ and log/."""
import os
import subprocess

import pytest

from appliance.context import Context
from appliance.serviceusers import account, prepare


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (the service users)")
def test_the_pbx_user_writes_its_cache_folder(data):
    ctx = Context(data, lab=True)
    drop = prepare(ctx, "pbx")
    cache = ctx.data_dir / "cache" / "pbx" / "prompts"
    done = subprocess.run([*drop, "mkdir", "-p", str(cache)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert cache.stat().st_uid == account("pbx").pw_uid
