"""A power cut at any point of an apply leaves the old or the new revision, never a mix.

A child process applies a change and SIGKILLs itself at a chosen step; the parent then recovers
the data directory as the box would at boot and checks store and files agree."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from appliance.apply import ApplyEngine
from appliance.context import Context
from appliance.store import ConfigStore
from tests.appliance.probe_service import ProbeService

SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from appliance import apply as ap
    from appliance.context import Context
    from appliance.store import ConfigStore
    from tests.appliance.probe_service import ProbeService

    step = sys.argv[2]
    ctx = Context(sys.argv[1], lab=True)
    store = ConfigStore(ctx.db_path)
    engine = ap.ApplyEngine(ctx, store, {"probe": ProbeService(ctx)})
    if store.current() is None:
        engine.apply({}, "system", "factory")
    def die(*a, **k):
        os.kill(os.getpid(), signal.SIGKILL)
    if step == "render":
        ProbeService.render = lambda self, config: die()
    elif step == "switch":
        ap.atomic_symlink = die
    elif step == "commit":
        store.commit = die
    def mutate(doc):
        doc["system"]["company_name"] = "New Name"
    engine.update("test", "change", mutate)
    print("completed")
""")


def run_child(data_dir, step):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run([sys.executable, "-c", SCRIPT, str(data_dir), step], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("step", ["render", "switch", "commit"])
def test_power_cut_mid_apply_leaves_the_old_revision(tmp_path, step):
    data = tmp_path / "var"
    result = run_child(data, step)
    assert result.returncode == -signal.SIGKILL, result.stderr
    ctx = Context(data, lab=True)
    store = ConfigStore(ctx.db_path)
    engine = ApplyEngine(ctx, store, {"probe": ProbeService(ctx)})
    engine.recover()
    assert store.current_id() == 1
    assert engine.current_config().system.company_name == "My Company"
    assert (ctx.etc_dir("probe") / "company.txt").read_text() == "My Company\n"
    interrupted = store.revision(2)
    assert interrupted.state == "failed" and "interrupted" in interrupted.error
    # and the box keeps working: the next change applies normally
    engine.update("test", "after", lambda doc: doc["system"].update(company_name="Later"))
    assert (ctx.etc_dir("probe") / "company.txt").read_text() == "Later\n"
    store.close()


def test_completed_apply_survives_a_restart(tmp_path):
    data = tmp_path / "var"
    result = run_child(data, "none")
    assert "completed" in result.stdout, result.stderr
    ctx = Context(data, lab=True)
    store = ConfigStore(ctx.db_path)
    engine = ApplyEngine(ctx, store, {"probe": ProbeService(ctx)})
    engine.recover()
    assert engine.current_config().system.company_name == "New Name"
    assert (ctx.etc_dir("probe") / "company.txt").read_text() == "New Name\n"
    store.close()
