"""Voice pages: prompts per language (listen, upload, restore, box language) and music-on-hold classes
(create, upload, listen, delete), with the audio measured as served, and refusals with their reason."""
from __future__ import annotations

import array
import io
import re
import shutil
import subprocess
import wave

import pytest

from services.pbx.prompts import audio, catalogue
from tests.webadmin.helpers import csrf_of, post

pytestmark = pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                                reason="espeak-ng and sox are needed")


def made(tmp_path, name: str, *synth: str, rate: str = "44100") -> bytes:
    """A sound file made with sox (speech from espeak-ng unless `synth` is given)."""
    out = tmp_path / name
    if synth:
        subprocess.run(["sox", "-V1", "-n", "-r", rate, "-c", "1", str(out), *synth], check=True, timeout=120)
    else:
        speech = tmp_path / "speech.wav"
        subprocess.run(["espeak-ng", "-v", "fr-fr", "-w", str(speech), "Bonjour, ceci est notre annonce."],
                       check=True, timeout=30)
        subprocess.run(["sox", "-V1", str(speech), "-r", rate, "-c", "2", str(out)], check=True, timeout=60)
    return out.read_bytes()


def upload(client, path: str, form_path: str, data: bytes, name: str):
    token = csrf_of(client, form_path)
    return client.post(path, data={"csrf_token": token, "audio": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def served(client, path: str) -> tuple[int, float, float]:
    """(sample rate, seconds, loudest second in dBFS) of a WAV as the page's <audio> element gets it."""
    response = client.get(path)
    assert response.status_code == 200 and response.mimetype == "audio/wav"
    with wave.open(io.BytesIO(response.data)) as w:
        rate, frames = w.getframerate(), w.readframes(w.getnframes())
    samples = array.array("h", frames)
    loudest = max(audio.dbfs(samples[i:i + rate]) for i in range(0, len(samples), rate))
    return rate, len(samples) / rate, loudest


def text(response) -> str:
    return response.get_data(as_text=True)


def test_prompt_sets_listen_upload_and_restore(admin_client, tmp_path):
    page = text(admin_client.get("/voice/prompts?lang=zh-TW"))
    assert "請在嗶聲後留言" in page and page.count("<audio controls") > 50
    assert 'href="/voice/prompts?lang=fr"' in page and "Hold music" in page  # menu entries
    src = re.search(r'<tr id="prompt-goodbye">.*?src="([^"]+)"', page, re.S).group(1)
    number = catalogue.numbered().index("goodbye") + 1  # what an admin dials after *39
    assert re.search(rf'<tr id="prompt-goodbye">\s*<td>{number}</td>', page) and "*39" in page
    rate, seconds, loudest = served(admin_client, src.replace("&amp;", "&"))
    assert rate == 16000 and 0.3 < seconds < 3 and loudest > -30

    form = "/voice/prompts/fr/goodbye"
    assert "Au revoir." in text(admin_client.get(form))
    response = upload(admin_client, f"{form}/upload", form, made(tmp_path, "mine.mp3"), "mine.mp3")
    assert response.status_code == 302
    page = text(admin_client.get(form))
    assert "now plays your recording" in page and "Restore the generated prompt" in page
    rate, seconds, loudest = served(admin_client, "/voice/prompts/fr/goodbye.wav?rate=16000")
    assert rate == 16000 and seconds > 1.5 and loudest > -25  # the upload, longer than "Au revoir."
    assert served(admin_client, "/voice/prompts/fr/goodbye.wav")[0] == 8000

    broken = upload(admin_client, f"{form}/upload", form, b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk", "broken.wav")
    assert broken.status_code == 400 and "The file was refused:" in text(broken)
    wrong = upload(admin_client, f"{form}/upload", form, b"%PDF-1.4 not a sound" * 20, "letter.ogg")
    assert wrong.status_code == 400 and "this is not a WAV, MP3 or OGG file" in text(wrong)
    assert upload(admin_client, f"{form}/upload", form, b"", "").status_code == 400
    assert served(admin_client, "/voice/prompts/fr/goodbye.wav?rate=16000")[1] > 1.5  # still the good upload

    assert post(admin_client, f"{form}/restore", {}, form).status_code == 302
    assert "the generated prompt" in text(admin_client.get(form))
    assert served(admin_client, "/voice/prompts/fr/goodbye.wav?rate=16000")[1] < 1.5
    assert admin_client.get("/voice/prompts/fr/no-such-prompt").status_code == 404
    assert admin_client.get("/voice/prompts/de/goodbye").status_code == 404


def test_box_prompt_language(admin_client, runtime):
    response = post(admin_client, "/voice/prompts", {"prompt_language": "zh-TW"})
    assert response.status_code == 302 and runtime.config.pbx.prompt_language == "zh-TW"
    refused = post(admin_client, "/voice/prompts", {"prompt_language": "xx"})
    assert refused.status_code == 400 and runtime.config.pbx.prompt_language == "zh-TW"


def test_music_on_hold_classes(admin_client, runtime, tmp_path):
    page = text(admin_client.get("/voice/moh"))
    assert 'id="moh-default"' in page and "Delete the class default" not in page
    rate, seconds, loudest = served(admin_client, "/voice/moh/builtin.wav")
    assert rate == 16000 and seconds > 20 and loudest > -25

    assert post(admin_client, "/voice/moh/classes", {"name": "sales"}, "/voice/moh").status_code == 302
    bad = post(admin_client, "/voice/moh/classes", {"name": "no spaces"}, "/voice/moh")
    assert bad.status_code == 400 and "letters, digits" in text(bad)
    twice = post(admin_client, "/voice/moh/classes", {"name": "sales"}, "/voice/moh")
    assert twice.status_code == 400 and "exists" in text(twice)
    assert [c.name for c in runtime.config.pbx.moh_classes] == ["default", "sales"]

    song = made(tmp_path, "song.ogg", "synth", "45", "pluck", "E3", "tremolo", "2", "vol", "0.5")
    response = upload(admin_client, "/voice/moh/sales/upload", "/voice/moh", song, "song.ogg")
    assert response.status_code == 302
    (entry,) = next(c for c in runtime.config.pbx.moh_classes if c.name == "sales").files
    assert entry.title == "song.ogg" and abs(entry.seconds - 45) < 0.2
    page = text(admin_client.get("/voice/moh"))
    assert "song.ogg" in page and "0:45" in page
    rate, seconds, loudest = served(admin_client, f"/voice/moh/sales/files/{entry.id}.wav")
    assert rate == 16000 and abs(seconds - 45) < 0.2 and loudest > -30

    long = made(tmp_path, "long.wav", "synth", "660", "pinknoise", "vol", "0.2", rate="8000")
    assert len(long) > 10 * 1024 * 1024  # above the web admin's usual 2 MiB request limit
    refused = upload(admin_client, "/voice/moh/sales/upload", "/voice/moh", long, "long.wav")
    assert refused.status_code == 400
    assert "long.wav was refused: the recording is longer than 10 minutes" in text(refused)
    corrupt = upload(admin_client, "/voice/moh/sales/upload", "/voice/moh", song[:2500], "cut.ogg")
    assert corrupt.status_code == 400 and "cut.ogg was refused" in text(corrupt)
    assert len(next(c for c in runtime.config.pbx.moh_classes if c.name == "sales").files) == 1

    no_default = post(admin_client, "/voice/moh/default/delete", {}, "/voice/moh")
    assert no_default.status_code == 400 and "cannot be deleted" in text(no_default)
    assert post(admin_client, f"/voice/moh/sales/files/{entry.id}/delete", {}, "/voice/moh").status_code == 302
    assert admin_client.get(f"/voice/moh/sales/files/{entry.id}.wav").status_code == 404
    assert post(admin_client, "/voice/moh/sales/delete", {"confirm": "1"}, "/voice/moh").status_code == 302
    assert [c.name for c in runtime.config.pbx.moh_classes] == ["default"]
    assert not (runtime.ctx.data_dir / "state" / "pbx" / "moh" / "sales").exists()


def test_voice_pages_are_for_admins(client):
    assert client.get("/voice/prompts").status_code == 302
    assert client.get("/voice/moh/builtin.wav").status_code == 302
