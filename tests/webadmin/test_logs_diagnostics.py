"""The log viewer (list, filtered tail, download, nothing outside the log folders) with bounded log files,
and the diagnostics tools run from the box (ping and tracepath to loopback, a DNS lookup, input checked)."""
from __future__ import annotations

import os

from appliance import logfiles
from tests.webadmin.helpers import post


def test_log_files_listed_filtered_and_downloaded_never_beyond_the_folders(admin_client, runtime):
    folder = runtime.ctx.log_dir("pbx")
    (folder / "process.log").write_text("".join(f"line {n} {'WARNING' if n % 10 == 0 else 'INFO'}\n"
                                                for n in range(3000)))
    (runtime.ctx.data_dir / "secret.txt").write_text("not a log\n")
    index = admin_client.get("/logs/").get_data(as_text=True)
    assert "/logs/pbx/process.log" in index
    page = admin_client.get("/logs/pbx/process.log?contains=warning&lines=100").get_data(as_text=True)
    assert "line 2990 WARNING" in page and "line 2991" not in page and page.count("WARNING") == 100
    assert "line 0 WARNING" not in page  # only the last 100 of them
    assert admin_client.get("/logs/pbx/process.log?lines=99999").status_code == 200
    download = admin_client.get("/logs/pbx/process.log/download")
    assert download.status_code == 200 and download.get_data(as_text=True).startswith("line 0 WARNING\nline 1 INFO")
    for bad in ("/logs/pbx/..%2F..%2Fsecret.txt", "/logs/../secret.txt", "/logs/pbx/secret.txt",
                "/logs/pbx/missing.log"):
        assert admin_client.get(bad).status_code == 404, bad


def test_a_log_over_its_limit_is_rotated_in_place_and_its_writer_goes_on(runtime):
    """Before, the daemons' and service processes' log files grew without end until the disk was full."""
    path = runtime.ctx.log_dir("proxy") / "squid.log"
    writer = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # as a daemon's stdout is
    try:
        os.write(writer, b"x" * 5000 + b"\nlast old line\n")
        assert logfiles.keep_bounded(runtime.ctx, limit=4096) == ["proxy/squid.log"]
        os.write(writer, b"first new line\n")
    finally:
        os.close(writer)
    assert path.read_bytes() == b"first new line\n"
    assert (path.with_name("squid.log.1")).read_bytes().endswith(b"last old line\n")
    assert logfiles.keep_bounded(runtime.ctx, limit=4096) == []  # the .1 file is not rotated again


def test_diagnostics_run_the_tools_on_checked_input(admin_client):
    ping = post(admin_client, "/diagnostics/", {"tool": "ping", "host": "127.0.0.1"})
    assert ping.status_code == 200 and "3 packets transmitted" in ping.get_data(as_text=True)
    path = post(admin_client, "/diagnostics/", {"tool": "tracepath", "host": "127.0.0.1"})
    assert path.status_code == 200 and "127.0.0.1" in path.get_data(as_text=True)
    for hostile in ("-f 127.0.0.1", "127.0.0.1; reboot", "$(id)", ""):
        refused = post(admin_client, "/diagnostics/", {"tool": "ping", "host": hostile})
        assert refused.status_code == 400 and 'id="e-host"' in refused.get_data(as_text=True), hostile
    lookup = post(admin_client, "/diagnostics/", {"tool": "dns", "host": "example.com", "type": "MX"})
    assert lookup.status_code == 200 and "dig" in lookup.get_data(as_text=True).lower()
    mail = post(admin_client, "/diagnostics/", {"tool": "mail", "address": "not an address"})
    assert mail.status_code == 400 and 'id="e-address"' in mail.get_data(as_text=True)
