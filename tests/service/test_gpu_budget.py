"""GPU time on ZeroGPU: durations sized for the model and the request, the deadline inside the loan, and caps
that keep every request within the longest loan (lowered fields say why; a request that does not fit is
refused naming its field, before any GPU is borrowed)."""

import pytest
from support import ROOT
from support.fake_backend import FakeBackend
from support.service_calls import Backend

from janus_demo.model.image_loop import ImageProgress
from janus_demo.model.image_shape import JANUS_PRO
from janus_demo.service.errors import FieldError
from janus_demo.service.gpu_budget import GpuBudget
from janus_demo.service.schemas import Limits
from janus_demo.web.refusals import validator

B1, B7 = 1.5, 6.9  # language-model parameters of Janus-Pro-1B and -7B, in billions
BUDGET = GpuBudget()
STEPS = JANUS_PRO.tokens  # steps of one Janus-Pro image


def test_durations_grow_with_the_model_and_the_request():
    assert BUDGET.chat_duration(B1, 512, 0) < BUDGET.chat_duration(B7, 512, 0)
    assert BUDGET.chat_duration(B7, 512, 0) < BUDGET.chat_duration(B7, 512, 2) < BUDGET.chat_duration(B7, 2048, 2)
    assert BUDGET.image_duration(B1, 4, True, 12, steps=STEPS) < BUDGET.image_duration(B7, 4, True, 12, steps=STEPS)
    assert BUDGET.image_duration(B7, 4, False, 12, steps=STEPS) < BUDGET.image_duration(B7, 4, True, 12, steps=STEPS)
    assert BUDGET.image_duration(B7, 4, True, 0, steps=STEPS) < BUDGET.image_duration(B7, 4, True, 24, steps=STEPS)
    assert BUDGET.image_duration(B7, 4, True, 12, steps=STEPS) < BUDGET.image_duration(B7, 16, True, 12, steps=STEPS)


def test_the_largest_default_requests_fit_the_longest_loan_for_7b():
    """DeepSeek's biggest settings (16 guided images, previews) and the longest answer with 4 images."""
    assert BUDGET.fits(BUDGET.image_seconds(B7, 16, True, 24, steps=STEPS))
    assert BUDGET.fits(BUDGET.chat_seconds(B7, 2048, 4))
    assert BUDGET.image_duration(B7, 16, True, 24, steps=STEPS) <= BUDGET.max_duration_s


def test_an_upscale_borrows_in_proportion_to_its_source_area():
    assert BUDGET.upscale_seconds(384, 384) == pytest.approx(1.0, rel=0.01)  # one Janus-Pro image: about 1 s
    assert BUDGET.upscale_seconds(768, 768) == pytest.approx(4 * BUDGET.upscale_seconds(384, 384))


def test_the_run_stops_itself_a_margin_before_its_loan_ends():
    for duration in (BUDGET.min_duration_s, 60, BUDGET.max_duration_s):
        assert BUDGET.run_deadline(duration) == duration - BUDGET.margin_s
    assert BUDGET.duration(0.0) == BUDGET.min_duration_s and BUDGET.duration(1e6) == BUDGET.max_duration_s


def test_previews_count_at_most_one_per_interval():
    """Previews are spaced on ZeroGPU, so asking for one every step does not make a request unaffordable."""
    steps_only = BUDGET.image_seconds(B1, 1, False, 0, steps=STEPS)
    every_step = BUDGET.image_seconds(B1, 1, False, 575, steps=STEPS)
    assert every_step == BUDGET.image_seconds(B1, 1, False, 10_000, steps=STEPS)
    assert every_step - steps_only <= (2 + steps_only / BUDGET.preview_interval_s) * BUDGET.preview_s


# --- a budget too small for the usual caps: the caps come down and the fields say why --------------------

TIGHT = GpuBudget(max_duration_s=30, margin_s=5, step_s=0.01, token_s=0.05, row_growth=0.5)  # 25 s of work


@pytest.fixture(scope="module")
def tight(loaded_tiny):
    return Backend(loaded_tiny, gpu_budget=TIGHT)


def test_caps_come_down_to_what_fits_and_the_fields_say_so(tight, loaded_tiny):
    chat, images = tight.schemas.chat["max_new_tokens"], tight.schemas.images["num_images"]
    assert chat.maximum == TIGHT.max_new_tokens(tight.billions, tight.limits.max_images_per_conversation) < 2048
    assert images.maximum == TIGHT.max_images(tight.billions, guided=False, steps=STEPS) < 16
    for field in (chat, images):
        assert "a request may borrow a ZeroGPU GPU for at most 30 s" in field.help
    with pytest.raises(FieldError, match=r"Number of images must be .* \(got 16\)\. Lower than usual here: a request"):
        tight.prepare_images("a cat", 1, num_images=16)
    assert "here at most one every 0.5 s" in tight.schemas.images["preview_every"].help  # previews are spaced
    plain = Backend(loaded_tiny).schemas.images
    assert plain["num_images"].maximum == 16 and "here" not in plain["preview_every"].help, "off ZeroGPU: as usual"


def test_a_request_that_does_not_fit_is_refused_on_its_field_before_the_gpu(tight):
    most = TIGHT.max_images(tight.billions, guided=True, steps=STEPS)
    assert 0 < most < tight.limits.max_num_images  # unguided, more fit: the schema allows them
    tight.prepare_images("a cat", 1, guidance_scale=1.0, num_images=most + 1, preview_every=0)
    with pytest.raises(FieldError, match=rf"at most {most} fit with guidance\. Ask for fewer images") as refused:
        tight.prepare_images("a cat", 1, guidance_scale=5.0, num_images=most + 1, preview_every=0)
    assert refused.value.field == "num_images"
    names = tight.schemas.images.names
    shown = validator(tight.prepare_images, names, "prompt")("a cat", 1, 5.0, 1.0, most + 1, 1.0, 0, "off")
    by_name = dict(zip(names, shown, strict=True))
    assert by_name["num_images"]["is_valid"] is False and "at most" in by_name["num_images"]["message"]
    assert by_name["prompt"]["is_valid"] is True


def test_durations_and_deadlines_come_from_the_prepared_request(tight):
    small = tight.prepare_images("a cat", 1, guidance_scale=1.0, num_images=1, preview_every=0)
    big = tight.prepare_images("a cat", 1, guidance_scale=1.0, num_images=tight.limits.max_num_images)
    assert tight.images_duration(small) < tight.images_duration(big) <= TIGHT.max_duration_s
    turn = tight.prepare_chat({"text": "hi", "files": []}, None, 64)
    assert tight.chat_duration(turn) == TIGHT.chat_duration(tight.billions, 64, 0)
    assert tight.run_deadline(tight.chat_duration(turn)) == tight.chat_duration(turn) - TIGHT.margin_s


def test_the_budget_counts_the_loaded_models_steps(tight, loaded_small):
    """An 8x8 model draws 64 steps an image, not 576: more images fit the same loan, and it borrows less."""
    small = Backend(loaded_small, gpu_budget=TIGHT)
    fit = TIGHT.max_images(small.billions, guided=False, steps=64)
    assert small.schemas.images["num_images"].maximum == min(16, fit) > tight.schemas.images["num_images"].maximum
    most = tight.schemas.images["num_images"].maximum  # the most that fit 576 steps
    settings = {"guidance_scale": 1.0, "num_images": most, "preview_every": 0}
    drawing = small.prepare_images("a cat", 1, **settings)
    assert small.images_duration(drawing) == TIGHT.image_duration(small.billions, most, False, 0, steps=64)
    assert small.images_duration(drawing) < tight.images_duration(tight.prepare_images("a cat", 1, **settings))


def test_limits_say_nothing_when_not_capped():
    assert Limits().why_capped("num_images") == ""
    assert "borrow" in Limits(capped=("num_images",), cap_reason="borrow").why_capped("num_images")


def test_previews_closer_than_the_interval_are_dropped_and_the_images_still_come(loaded_tiny):
    def previews_and_images(interval_s: float) -> tuple[int, int]:
        limits = Limits(preview_interval_s=interval_s, max_preview_updates=600)
        backend = FakeBackend(loaded_tiny, step_delay=0.01, limits=limits)
        backend.image_steps = 40  # 0.4 s, a preview every step
        progress = [p for p in backend.generate_images("a cat", 1, preview_every=1) if isinstance(p, ImageProgress)]
        return sum(bool(p.previews) for p in progress), len(progress[-1].images or [])

    assert previews_and_images(0.0) == (40, 1)
    spaced, images = previews_and_images(0.1)
    assert 2 <= spaced <= 6 and images == 1


def test_an_edit_borrows_as_long_as_its_drawing_plus_encoding_its_photo(tight):
    photo = str(ROOT / "assets" / "chelsea.png")
    settings = {"guidance_scale": 1.0, "num_images": 2, "preview_every": 0}
    edit = tight.prepare_complete(photo, "a cat", 12, 1, **settings)
    drawing = tight.prepare_images("a cat", 1, **settings)
    expected = TIGHT.duration(TIGHT.encode_s + TIGHT.image_seconds(tight.billions, 2, False, steps=STEPS))
    assert tight.edit_duration(edit) == expected >= tight.images_duration(drawing)
    many = tight.prepare_complete(photo, "a cat", 12, 1, **settings | {"num_images": 4})
    assert tight.edit_duration(edit) < tight.edit_duration(many)
    with pytest.raises(FieldError, match="Ask for fewer images"):  # edits are refused on their field too
        most = TIGHT.max_images(tight.billions, guided=True, steps=STEPS)
        tight.prepare_complete(photo, "a cat", 12, 1, guidance_scale=5.0, num_images=most + 1, preview_every=0)
