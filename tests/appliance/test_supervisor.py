import asyncio
import os
import signal

import pytest

from appliance.apply import ApplyEngine
from appliance.schema import parse
from appliance.service import ApplyError, Status
from appliance.store import ConfigStore
from appliance.supervisor import Supervisor, backoff
from tests.appliance.conftest import set_company
from tests.appliance.probe_service import ProbeService


async def wait_until(predicate, timeout=10.0):
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return False


def test_backoff_grows_and_is_capped():
    assert [backoff(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert backoff(50) == 60


def test_daemon_is_restarted_after_a_crash_and_stopped_cleanly(ctx):
    async def scenario():
        probe = ProbeService(ctx, daemon=True)
        sup = Supervisor(ctx, {"probe": probe})
        await sup.start(parse({}))
        child = sup.units["probe"].children["sleeper"]
        if child.proc is None:  # spawned, not yet running: starting, not "restarting"
            assert sup.status("probe").health == "starting"
        assert await wait_until(lambda: child.running)
        assert sup.status("probe").health == "ok"
        first_pid = child.proc.pid
        os.kill(first_pid, signal.SIGKILL)
        assert await wait_until(lambda: not child.running)
        assert sup.status("probe").summary == "restarting sleeper"
        assert await wait_until(lambda: child.running and child.proc.pid != first_pid)
        assert child.restarts == 1
        assert sup.status("probe").figures["daemon restarts"] == 1
        pid = child.proc.pid
        await sup.stop()
        assert not child.running
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert probe.events[-1] == ("stop", "")
        assert sup.status("probe").health == "disabled"
    asyncio.run(scenario())


def test_live_apply_reloads_and_rolls_back_a_refused_reload(ctx):
    """A service that refuses its new configuration brings everything back to the old revision."""
    store = ConfigStore(ctx.db_path)
    probe = ProbeService(ctx)
    engine = ApplyEngine(ctx, store, {"probe": probe})
    engine.apply({}, "system", "factory")

    async def scenario():
        sup = Supervisor(ctx, {"probe": probe})
        engine.live = sup
        await sup.start(engine.current_config())
        await asyncio.to_thread(engine.update, "alice", "ok", set_company("Acme"))
        assert probe.running_name == "Acme"
        with pytest.raises(ApplyError, match="reload refused"):
            await asyncio.to_thread(engine.update, "alice", "bad", set_company("FAIL"))
        assert probe.running_name == "Acme"
        assert probe.events[-2:] == [("reload", "FAIL"), ("reload", "Acme")]
        assert (ctx.etc_dir("probe") / "company.txt").read_text() == "Acme\n"
        assert store.history()[0].state == "failed" and store.current().config.system.company_name == "Acme"
        await sup.stop()
    asyncio.run(scenario())
    store.close()


def test_failed_start_is_retried(ctx):
    class Flaky(ProbeService):
        attempts = 0

        async def start(self, config):
            Flaky.attempts += 1
            if Flaky.attempts < 2:
                raise OSError("address already in use")
            await super().start(config)

    async def scenario():
        sup = Supervisor(ctx, {"probe": Flaky(ctx)})
        await sup.start(parse({}))
        assert sup.status("probe").health == "down"
        assert "address already in use" in sup.status("probe").summary
        assert await wait_until(lambda: sup.status("probe").health == "ok", timeout=5)
        await sup.stop()
    asyncio.run(scenario())


def test_service_that_stops_working_is_restarted_by_the_watchdog(ctx):
    class Wedged(ProbeService):
        broken = False

        def status(self):
            return Status("down", "listener died") if self.broken else super().status()

    async def scenario():
        probe = Wedged(ctx)
        sup = Supervisor(ctx, {"probe": probe})
        sup.watch_interval = 0.1
        await sup.start(parse({}))
        probe.broken = True
        assert await wait_until(lambda: ("stop", "") in probe.events)
        probe.broken = False
        assert await wait_until(lambda: sup.status("probe").health == "ok", timeout=5)
        assert [e[0] for e in probe.events] == ["start", "stop", "start"]
        await sup.stop()
    asyncio.run(scenario())
