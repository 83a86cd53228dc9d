"""The CUDA-graph fast path of the image loop: when it runs, how captures are kept and reused, and that it
changes no token.

On CPU: the selection logic, and the bookkeeping (one capture per (rows, cache length) reused across
requests, reset in between, each new capture verified, at most MAX_KEPT kept, fall-backs) with a stand-in
"graph" whose replay re-runs the captured step eagerly.
On CUDA (skipped elsewhere): real CUDA graphs give the same tokens as eager steps at the same seed, across
reused captures, and 4-bit models are captured or fall back cleanly.
"""

import logging

import pytest
import torch
from support.gpu import needs_cuda
from support.requests import generate_image_tokens, image_request

from janus_demo.model import cuda_graphs, internals, memory
from janus_demo.model.image_loop import ImageRequest, ImageTokenLoop, iter_image_tokens

PROMPT = "A red fox in the snow"
STEPS = 24  # > warm-up + verification steps, so plain replays run too


@pytest.fixture(autouse=True)
def clean_state(monkeypatch, loaded_tiny, loaded_small):
    monkeypatch.delenv(cuda_graphs.ENV_SWITCH, raising=False)
    monkeypatch.delenv(cuda_graphs.ZERO_GPU_ENV, raising=False)
    for loaded in (loaded_tiny, loaded_small):
        forget(loaded.model)
    yield
    for loaded in (loaded_tiny, loaded_small):
        forget(loaded.model)


def first_tokens(loaded, request: ImageRequest, steps: int = STEPS) -> torch.Tensor:
    for done, tokens in iter_image_tokens(loaded, request):
        if done == steps:
            return tokens[:, :steps].clone()
    raise AssertionError("the loop ended early")


def request(loaded, prompt: str = PROMPT, **overrides) -> ImageRequest:
    settings = dict(seed=7, num_images=2, temperature=0.9, top_p=0.9, preview_mode="off")
    return image_request(loaded, prompt, **(settings | overrides))


def forget(model) -> None:
    """Forget what the fast path learnt about `model` (verified or disabled) and drop its captures."""
    cuda_graphs._status.pop(model, None)
    cuda_graphs._pools.pop(model, None)


# --- selection -----------------------------------------------------------------------------------


def test_blocker_says_why_eager_is_used(monkeypatch):
    model = torch.nn.Linear(1, 1)
    assert cuda_graphs.blocker(model, torch.device("cpu")) == "not on CUDA"
    assert cuda_graphs.blocker(model, torch.device("cuda")) is None
    monkeypatch.setenv(cuda_graphs.ZERO_GPU_ENV, "1")
    assert cuda_graphs.blocker(model, torch.device("cuda")) == "ZeroGPU"
    monkeypatch.delenv(cuda_graphs.ZERO_GPU_ENV)
    for off in ("0", "false", "OFF", " no "):
        monkeypatch.setenv(cuda_graphs.ENV_SWITCH, off)
        assert "turned off" in cuda_graphs.blocker(model, torch.device("cuda"))
    monkeypatch.setenv(cuda_graphs.ENV_SWITCH, "1")
    assert cuda_graphs.blocker(model, torch.device("cuda")) is None
    cuda_graphs.disable(model, "test")
    assert "earlier failure" in cuda_graphs.blocker(model, torch.device("cuda"))


@pytest.mark.parametrize(("mode", "blocked"), [("8bit", True), ("4bit", False)])
def test_8bit_language_models_run_eagerly_4bit_ones_are_tried(tiny_dir, mode, blocked):
    from janus_demo.model.loading import load_janus

    loaded = load_janus(str(tiny_dir), quantization=mode, device="cpu")  # 4-bit: lm_head is int8, outside the step
    reason = cuda_graphs.blocker(loaded.model, torch.device("cuda"))
    assert (reason == "8-bit (LLM.int8) layers cannot be captured") if blocked else reason is None


def test_cpu_requests_use_eager_steps(loaded_tiny):
    assert ImageTokenLoop(loaded_tiny, request(loaded_tiny)).fast is None


# --- the orchestration, with a stand-in graph on CPU -----------------------------------------


@pytest.fixture
def pretend_cuda(monkeypatch):
    """Let the fast path run on CPU: `blocker` judges as if on CUDA, and capture records nothing real.

    Returns the list of captures made; `capture_fault` in it chooses what the stand-in does:
    None (replay = the step, run eagerly), "raise" (capture fails), or a number added to every score.
    """
    real_blocker = cuda_graphs.blocker
    monkeypatch.setattr(cuda_graphs, "blocker", lambda model, device: real_blocker(model, torch.device("cuda")))
    captures: list[dict] = []

    def capture(step, embeds, mask):
        captures.append({"embeds": tuple(embeds.shape), "mask": tuple(mask.shape)})
        if fault["value"] == "raise":
            raise RuntimeError("operation not permitted when stream is capturing")
        out = torch.empty(mask.shape[0], 16384)

        def replay():
            out.copy_(step(embeds, mask) + (fault["value"] or 0.0))

        return replay, out

    fault = {"value": None}
    monkeypatch.setattr(cuda_graphs, "capture_cuda_graph", capture)
    return captures, fault


def test_graph_path_gives_the_eager_tokens_and_is_verified_once_per_capture(loaded_tiny, pretend_cuda, monkeypatch):
    captures, _ = pretend_cuda
    fast = first_tokens(loaded_tiny, request(loaded_tiny))
    assert cuda_graphs.status(loaded_tiny.model) == cuda_graphs.VERIFIED
    kept = cuda_graphs.pool(loaded_tiny.model).captures
    ((key, capture),) = kept.items()
    assert captures == [{"embeds": (4, 1, 128), "mask": key}] and capture.verify_left == 0
    again = first_tokens(loaded_tiny, request(loaded_tiny))
    assert len(captures) == 1 and capture.uses == 2  # the second request replayed the first one's capture
    monkeypatch.setenv(cuda_graphs.ENV_SWITCH, "0")
    assert ImageTokenLoop(loaded_tiny, request(loaded_tiny)).fast is None
    eager = first_tokens(loaded_tiny, request(loaded_tiny))
    assert torch.equal(fast, eager) and torch.equal(again, eager)


def test_one_capture_per_rows_and_cache_length_bucket(loaded_tiny, pretend_cuda):
    captures, _ = pretend_cuda
    short = request(loaded_tiny, prompt="A fox")
    longer = request(loaded_tiny, prompt="A red fox in the snow, at dusk")  # same 64-position bucket
    very_long = request(loaded_tiny, prompt="A red fox in the snow " * 4)  # the next bucket
    for r in (short, longer, short, request(loaded_tiny, num_images=1), very_long):
        first_tokens(loaded_tiny, r, steps=8)
    lengths = {r.prompt_ids.shape[1] for r in (short, longer, very_long)}
    assert len(lengths) == 3
    kept = cuda_graphs.pool(loaded_tiny.model).captures
    rows = 2 * 2  # two images, guided
    assert [(k[0], k[1] % memory.CACHE_BUCKET) for k in kept] == [(rows, 0), (2, 0), (rows, 0)]
    assert list(kept)[0][1] == memory.cache_length(short.prompt_ids.shape[1], 576)
    assert list(kept)[2][1] == list(kept)[0][1] + memory.CACHE_BUCKET
    assert len(captures) == 3 and [c.uses for c in kept.values()] == [3, 1, 1]


def test_a_reused_capture_starts_from_an_empty_cache_and_mask(loaded_tiny, pretend_cuda):
    first_tokens(loaded_tiny, request(loaded_tiny), steps=30)
    loop = ImageTokenLoop(loaded_tiny, request(loaded_tiny))
    capture = loop.fast.captured
    assert capture.uses == 2 and capture.replay is not None and loop.fast.warm_up_left == 0
    assert [int(p) for p in internals.cache_write_positions(loop.cache)] == [0] * 2
    assert not capture.mask.any() and not capture.cache.layers[0].keys.any()
    loop.advance()  # the prefill: eager, into the capture's cache
    loop.advance()  # the first decode step: a replay, no warm-up
    prompt_len = loop.request.prompt_ids.shape[1]
    assert [int(p) for p in internals.cache_write_positions(loop.cache)] == [prompt_len + 1] * 2
    assert capture.mask.sum(dim=1).tolist() == [prompt_len + 1] * capture.key[0]


def test_new_captures_are_verified_reused_ones_are_not(loaded_tiny, pretend_cuda, monkeypatch):
    replays = {"verified": 0}
    real = cuda_graphs.GraphedDecode._verified_step

    def counting(self, eager):
        replays["verified"] += 1
        return real(self, eager)

    monkeypatch.setattr(cuda_graphs.GraphedDecode, "_verified_step", counting)
    first_tokens(loaded_tiny, request(loaded_tiny))
    first_tokens(loaded_tiny, request(loaded_tiny))
    assert replays["verified"] == cuda_graphs.VERIFY_STEPS
    first_tokens(loaded_tiny, request(loaded_tiny, num_images=1))  # a new key: a new capture, checked again
    assert replays["verified"] == 2 * cuda_graphs.VERIFY_STEPS


def test_at_most_max_kept_captures_least_recently_used_out(loaded_tiny, pretend_cuda, monkeypatch):
    monkeypatch.setattr(cuda_graphs, "MAX_KEPT", 2)
    for n in (1, 2, 1, 3):
        first_tokens(loaded_tiny, request(loaded_tiny, num_images=n), steps=6)
    kept = cuda_graphs.pool(loaded_tiny.model).captures
    assert [key[0] for key in kept] == [2, 6]  # 1 image (2 rows) used last but one, 3 images (6 rows) last
    assert cuda_graphs.held_bytes(loaded_tiny.model) == sum(c.nbytes() for c in kept.values()) > 0
    cuda_graphs.release(loaded_tiny.model)
    assert not kept and cuda_graphs.held_bytes(loaded_tiny.model) == 0


def test_captures_are_dropped_when_a_new_request_needs_their_memory():
    pool = cuda_graphs.GraphPool()
    free = {"room": True}
    for rows in (2, 4):
        pool.acquire((rows, 64), object, torch.device("cpu"), lambda: free["room"])
    free["room"] = False
    pool.acquire((8, 64), object, torch.device("cpu"), lambda: free["room"])
    assert list(pool.captures) == [(8, 64)] and pool.made == 3


@pytest.mark.parametrize("overrides", [dict(guidance_scale=1.0, num_images=1), dict(temperature=0.0)])
def test_graph_path_matches_eager_without_guidance_and_greedy(loaded_tiny, pretend_cuda, monkeypatch, overrides):
    fast = first_tokens(loaded_tiny, request(loaded_tiny, **overrides))
    monkeypatch.setenv(cuda_graphs.ENV_SWITCH, "0")
    assert torch.equal(fast, first_tokens(loaded_tiny, request(loaded_tiny, **overrides)))


def test_failed_capture_falls_back_once_and_is_remembered(loaded_tiny, pretend_cuda, monkeypatch, caplog):
    captures, fault = pretend_cuda
    fault["value"] = "raise"
    with caplog.at_level(logging.WARNING, logger="janus_demo"):
        fast = first_tokens(loaded_tiny, request(loaded_tiny))
        first_tokens(loaded_tiny, request(loaded_tiny))
    assert len(captures) == 1  # not retried on the next request
    assert cuda_graphs.status(loaded_tiny.model) == cuda_graphs.DISABLED
    assert not cuda_graphs.pool(loaded_tiny.model).captures  # released
    assert ImageTokenLoop(loaded_tiny, request(loaded_tiny)).fast is None
    assert [r.getMessage() for r in caplog.records if "CUDA graphs" in r.getMessage()] == [
        "CUDA graphs disabled for this model, image steps run eagerly from now on: capture failed: "
        "RuntimeError: operation not permitted when stream is capturing"
    ]
    monkeypatch.setenv(cuda_graphs.ENV_SWITCH, "0")
    assert torch.equal(fast, first_tokens(loaded_tiny, request(loaded_tiny)))


def test_a_graph_that_disagrees_with_eager_is_disabled(loaded_tiny, pretend_cuda, monkeypatch, caplog):
    captures, fault = pretend_cuda
    fault["value"] = 0.5
    with caplog.at_level(logging.WARNING, logger="janus_demo"):
        fast = first_tokens(loaded_tiny, request(loaded_tiny))
    assert cuda_graphs.status(loaded_tiny.model) == cuda_graphs.DISABLED
    assert any("differ from eager" in r.getMessage() for r in caplog.records)
    monkeypatch.setenv(cuda_graphs.ENV_SWITCH, "0")
    assert torch.equal(fast, first_tokens(loaded_tiny, request(loaded_tiny)))  # checked steps keep eager's scores


def test_whole_request_with_the_graph_path_matches_eager(loaded_small, pretend_cuda, monkeypatch):
    fast = generate_image_tokens(loaded_small, request(loaded_small, num_images=1))
    monkeypatch.setenv(cuda_graphs.ENV_SWITCH, "0")
    assert torch.equal(fast, generate_image_tokens(loaded_small, request(loaded_small, num_images=1)))


def forced_request(loaded, **overrides) -> ImageRequest:
    """A redraw-like request: the first rows and three middle ones forced to fixed codes, the rest sampled."""
    shape = loaded.image_shape
    mask = torch.zeros(shape.rows, shape.columns, dtype=torch.bool)
    mask[: shape.rows // 6], mask[shape.rows // 2 : shape.rows // 2 + 3] = True, True
    codes = torch.randint(0, 16384, (shape.tokens,), generator=torch.Generator().manual_seed(0))
    return request(loaded, forced_tokens=codes, forced_mask=mask.flatten(), **overrides)


def test_forced_tokens_take_the_graph_path_as_the_eager_one(loaded_small, pretend_cuda, monkeypatch):
    captures, _ = pretend_cuda
    forced = forced_request(loaded_small)
    fast = generate_image_tokens(loaded_small, forced)
    assert captures and cuda_graphs.status(loaded_small.model) == cuda_graphs.VERIFIED
    assert torch.equal(fast[:, forced.forced_mask], forced.forced_tokens[forced.forced_mask].expand(2, -1))
    monkeypatch.setenv(cuda_graphs.ENV_SWITCH, "0")
    assert torch.equal(fast, generate_image_tokens(loaded_small, forced_request(loaded_small)))


# --- real CUDA graphs ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loaded_tiny_cuda(tiny_dir):
    from janus_demo.model.loading import load_janus

    return load_janus(str(tiny_dir), quantization="none", device="cuda", dtype="bfloat16")


@needs_cuda
@pytest.mark.parametrize("overrides", [dict(), dict(num_images=1, guidance_scale=1.0), dict(temperature=0.0)])
def test_cuda_graphs_give_the_eager_tokens(loaded_tiny_cuda, monkeypatch, overrides):
    forget(loaded_tiny_cuda.model)
    fast = generate_image_tokens(loaded_tiny_cuda, request(loaded_tiny_cuda, **overrides))
    assert cuda_graphs.status(loaded_tiny_cuda.model) == cuda_graphs.VERIFIED, "the fast path fell back"
    monkeypatch.setenv(cuda_graphs.ENV_SWITCH, "0")
    eager = generate_image_tokens(loaded_tiny_cuda, request(loaded_tiny_cuda, **overrides))
    assert torch.equal(fast, eager)


@needs_cuda
def test_cuda_graphs_force_tokens_as_eager_steps_do(loaded_tiny_cuda, monkeypatch):
    forget(loaded_tiny_cuda.model)
    forced = forced_request(loaded_tiny_cuda)
    fast = generate_image_tokens(loaded_tiny_cuda, forced)
    assert cuda_graphs.status(loaded_tiny_cuda.model) == cuda_graphs.VERIFIED, "the fast path fell back"
    assert torch.equal(fast[:, forced.forced_mask].cpu(), forced.forced_tokens[forced.forced_mask].expand(2, -1))
    monkeypatch.setenv(cuda_graphs.ENV_SWITCH, "0")
    assert torch.equal(fast, generate_image_tokens(loaded_tiny_cuda, forced_request(loaded_tiny_cuda)))


@needs_cuda
def test_a_reused_cuda_graph_gives_the_eager_tokens(loaded_tiny_cuda, monkeypatch):
    forget(loaded_tiny_cuda.model)
    first = generate_image_tokens(loaded_tiny_cuda, request(loaded_tiny_cuda, seed=3))
    second = generate_image_tokens(loaded_tiny_cuda, request(loaded_tiny_cuda, prompt="A fox", seed=4))
    kept = cuda_graphs.pool(loaded_tiny_cuda.model)
    assert kept.made == 1 and [c.uses for c in kept.captures.values()] == [2]
    monkeypatch.setenv(cuda_graphs.ENV_SWITCH, "0")
    assert torch.equal(first, generate_image_tokens(loaded_tiny_cuda, request(loaded_tiny_cuda, seed=3)))
    assert torch.equal(
        second, generate_image_tokens(loaded_tiny_cuda, request(loaded_tiny_cuda, prompt="A fox", seed=4))
    )


@needs_cuda
def test_cuda_graph_scores_equal_eager_scores(loaded_tiny_cuda):
    """Replay and eager step on the same inputs, several steps in: identical scores."""
    forget(loaded_tiny_cuda.model)
    loop = ImageTokenLoop(loaded_tiny_cuda, request(loaded_tiny_cuda))
    for _ in range(1 + cuda_graphs.WARM_UP_STEPS + cuda_graphs.VERIFY_STEPS + 5):
        loop.advance()
    assert loop.fast is not None and loop.fast.active
    with torch.inference_mode():
        positions = [p.clone() for p in internals.cache_write_positions(loop.cache)]
        graphed = loop.fast.scores(loop.inputs_embeds, loop.length, loop._eager_scores).clone()
        for position, saved in zip(internals.cache_write_positions(loop.cache), positions, strict=True):
            position.copy_(saved)
        eager = loop._eager_scores()
    torch.testing.assert_close(graphed, eager, rtol=0, atol=0)


@needs_cuda
def test_cuda_graphs_with_4bit_give_the_eager_tokens_or_fall_back(tiny_dir, monkeypatch):
    pytest.importorskip("bitsandbytes")
    from janus_demo.model.loading import load_janus

    loaded = load_janus(str(tiny_dir), quantization="4bit", device="cuda", dtype="bfloat16")
    fast = generate_image_tokens(loaded, request(loaded))
    assert cuda_graphs.status(loaded.model) in (cuda_graphs.VERIFIED, cuda_graphs.DISABLED)
    print(f"4-bit CUDA graphs: {cuda_graphs.status(loaded.model)}")  # the GPU check's report shows which
    monkeypatch.setenv(cuda_graphs.ENV_SWITCH, "0")
    assert torch.equal(fast, generate_image_tokens(loaded, request(loaded)))
