import shutil
import tempfile
from pathlib import Path

import pytest

from appliance.context import Context


@pytest.fixture
def ctx():
    """A lab data directory vmail can reach: not under pytest's own tmp tree, whose top folder every
    pytest session on the machine chmods back to 0700 (masking the ACL entry the service adds)."""
    top = Path(tempfile.mkdtemp(prefix="ob-mail-"))
    top.chmod(0o711)
    yield Context(top / "var", lab=True)
    shutil.rmtree(top, ignore_errors=True)
