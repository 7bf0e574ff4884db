"""The control socket is bounded: idle connections cannot lock the console out (fails before the
fix: the ninth idle connection was served, and idle ones were held forever)."""
import asyncio

from appliance import control


class Box:
    admin_url = "https://127.0.0.1:1/"

    def status(self):
        return {}


def test_idle_connections_get_busy_then_time_out(tmp_path, monkeypatch):
    monkeypatch.setattr(control, "REQUEST_TIMEOUT", 1.0)
    path = tmp_path / "control.sock"

    async def scenario():
        server = await control.serve(Box(), path)
        idle = [await asyncio.open_unix_connection(str(path)) for _ in range(control.MAX_CLIENTS)]
        await asyncio.sleep(0.1)
        crowded = await asyncio.to_thread(control.request, path, {"op": "status"}, 5)
        for reader, _ in idle:  # the server hangs up on each idle connection after REQUEST_TIMEOUT
            assert await asyncio.wait_for(reader.read(), 5) == b""
        served = await asyncio.to_thread(control.request, path, {"op": "status"}, 5)
        for _, writer in idle:
            writer.close()
        server.close()
        return crowded, served
    crowded, served = asyncio.run(scenario())
    assert crowded == control.BUSY
    assert served["ok"] and served["admin_url"] == Box.admin_url
