"""The media engine's disk thread: a disk that does not keep up refuses more writes (the recording ends with
an error) but the file's close still follows its writes, in order, and reports; the file stays a valid WAV."""
from __future__ import annotations

import threading
import wave

from services.pbx.media.disk import DiskThread
from services.pbx.media.dsp import WavWriter
from tests.isolated import until


def test_a_full_queue_refuses_writes_and_the_close_still_completes_the_file(tmp_path):
    disk = DiskThread(jobs=1)
    stuck = threading.Event()
    disk.submit(stuck.wait)  # the disk is held up
    assert until(lambda: disk.jobs.qsize() == 0, 5)  # the thread is in that job
    writer = WavWriter(str(tmp_path / "rec.wav"), 8000, sync_every=0.02, disk=disk)
    chunk = b"\x10\x00" * 160  # 20 ms
    writer.write(chunk)  # queued: the one job the queue takes
    try:
        writer.write(chunk)
        raise AssertionError("a third job was queued")
    except OSError as exc:
        assert "does not keep up" in str(exc)
    done = []
    writer.close(done.append)  # the last job goes in all the same
    stuck.set()
    assert until(lambda: (disk.complete(), done)[1], 5), "close never reported"
    assert len(done) == 1 and "does not keep up" in str(done[0])  # the recording ended with an error
    assert writer.seconds == 0.02  # what reached the file, not the refused chunk
    with wave.open(str(tmp_path / "rec.wav")) as w:  # the first chunk written, then closed: a valid WAV
        assert w.getnframes() == 160 and w.readframes(160) == chunk
    disk.stop()
