"""Following a long action's progress page (webadmin/progress.py) to its end, as a browser does."""
from __future__ import annotations

import time

REFRESH_TAG = 'http-equiv="refresh" content="2"'


def follow(client, response, seconds: float = 60):
    """The redirect to /system/tasks/<id> that `response` is, followed (bounded in time) until the page
    stops reloading itself: that last page (its result). Every page in between shows the action running."""
    assert response.status_code == 302 and "/system/tasks/" in response.headers["Location"], \
        (response.status_code, response.get_data(as_text=True)[-800:])
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        page = client.get(response.headers["Location"])
        body = page.get_data(as_text=True)
        if REFRESH_TAG not in body:
            return page
        assert page.status_code == 200 and 'id="task-running"' in body and 'id="task-steps"' in body
        time.sleep(0.05)
    raise AssertionError("the action did not end in time")
