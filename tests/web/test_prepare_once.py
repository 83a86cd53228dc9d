"""One request from the browser is prepared once: its validator only sniffs the files, the event reads them.

A Redraw is sent as the browser sends it (a raw join of the Edit tab's private event, which runs the validator
and then the event), with the photo and the painted layer uploaded first; the intake's decoder is counted.
"""

import httpx
from PIL import Image
from support import ASSETS
from support.raw_api import raw_call

from janus_demo.service import intake

PHOTO = ASSETS / "chelsea.png"  # 451x300


def browser_event(url: str, button_elem_id: str) -> int:
    """The id of the (private) event that a click on the button `button_elem_id` runs."""
    config = httpx.get(url + "config", timeout=10).json()
    button = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == button_elem_id)
    return next(d["id"] for d in config["dependencies"] if [button, "click"] in d["targets"])


def upload(url: str, *paths) -> list[dict]:
    """Files uploaded as the browser does, as the FileData values it then sends."""
    files = [("files", (path.name, path.read_bytes(), "image/png")) for path in paths]
    served = httpx.post(url + "gradio_api/upload", files=files, timeout=30).json()
    return [{"path": path, "meta": {"_type": "gradio.FileData"}} for path in served]


def test_one_redraw_from_the_browser_decodes_its_photo_and_its_mask_once_each(fake_app, monkeypatch, tmp_path):
    _, url = fake_app
    mask = tmp_path / "mask.png"
    painted = Image.new("RGBA", (451, 300), (0, 0, 0, 0))
    painted.paste((255, 255, 255, 255), (0, 0, 100, 100))
    painted.save(mask)
    photo, layer = upload(url, PHOTO, mask)
    decoded = []
    read = intake._read

    def counted(file, *args, **kwargs):
        decoded.append(getattr(file, "name", "?"))
        return read(file, *args, **kwargs)

    monkeypatch.setattr(intake, "_read", counted)
    editor = {"background": photo, "layers": [layer], "composite": None}
    done, _ = raw_call(url, browser_event(url, "edit-redraw"), [editor, "a cat", 7, 1.0, 1.0, 1, 0, True], timeout=60)

    assert done["success"], done
    assert sorted(decoded) == sorted([photo["path"], layer["path"]])  # each once: not in the validator too
