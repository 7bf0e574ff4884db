"""At start the appliance lifts its open-file limit (RLIMIT_NOFILE) as far as the hard limit allows."""
import os
import resource
import subprocess
import sys

SCRIPT = """
import resource
from appliance import limits
print(limits.raise_open_files(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


def test_a_low_soft_limit_is_raised():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    want = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)

    def low():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, preexec_fn=low,
                         env={**os.environ, "PYTHONPATH": os.getcwd()}, timeout=60, check=True)
    assert out.stdout.split() == [str(want), str(want)]
