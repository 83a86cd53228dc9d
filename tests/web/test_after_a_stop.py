"""What the browser's Stop leaves (images_tab.after_images): the gallery comes back from the browser, so only its
files in gradio's cache folder are shown again and only the kept images the server-side run state names are
zipped; a path a client made up is never read, echoed or zipped."""

import zipfile
from pathlib import Path

from PIL import Image

from janus_demo.web.images_tab import after_images


def test_only_the_caches_files_come_back_and_only_the_kept_ones_are_zipped(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    (cache / "h1").mkdir(parents=True)
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
    kept, preview = cache / "h1" / "janus-7-1.png", cache / "h1" / "janus-7-2-step48.png"
    for path in (kept, preview):
        Image.new("RGB", (8, 8)).save(path)
    secret = tmp_path / "janus-7-3.png"  # outside the cache, named like a kept image
    secret.write_text("not for visitors")
    made_up = [str(secret), str(cache / "h1" / ".." / ".." / secret.name), str(cache / "h1"), "x" * 5000]
    gallery = [{"image": {"path": path}} for path in (str(kept), str(preview), *made_up)] + ["junk", {"image": 3}]
    run = {"running": True, "step": 576, "total": 576, "decoding": True, "count": 3, "seed": 7}
    run["kept"] = ["janus-7-1.png", "janus-7-3.png"]

    items, status, state, _, offered = after_images(gallery, run)

    assert items == [(str(kept), None), (str(preview), "Image 2 · unfinished")]
    assert status == "Stopped while decoding: 1 of 3 images kept." and state == {"running": False}
    archive = Path(offered["value"])
    assert archive.name == "janus-7.zip" and archive.resolve().is_relative_to(cache.resolve())
    with zipfile.ZipFile(archive) as zipped:
        assert zipped.namelist() == ["janus-7-1.png"]


def test_a_stop_before_the_end_marks_every_preview_and_zips_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    previews = [tmp_path / f"janus-5-{n}-step96.png" for n in (1, 2)]
    for path in previews:
        Image.new("RGB", (8, 8)).save(path)
    gallery = [{"image": {"path": str(path)}, "caption": None} for path in previews]

    items, status, _, _, offered = after_images(gallery, {"running": True, "step": 100, "total": 576})

    assert items == [(str(previews[0]), "Image 1 · unfinished"), (str(previews[1]), "Image 2 · unfinished")]
    assert status == "Stopped at step 100/576." and "value" not in offered, "no zip offered"
