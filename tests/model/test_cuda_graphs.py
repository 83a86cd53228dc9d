"""The CUDA-graph fast path of the image loop: when it runs, and that it changes no token.

On CPU: the selection logic, and the whole orchestration (warm-up, static buffers, capture, graph-vs-eager
check, fall-backs) with a stand-in "graph" whose replay re-runs the captured step eagerly.
On CUDA (skipped elsewhere): real CUDA graphs give the same tokens as eager steps at the same seed.
"""

import logging

import pytest
import torch
from support.requests import generate_image_tokens, image_request

from janus_demo.model import cuda_graphs, internals
from janus_demo.model.image_loop import ImageRequest, ImageTokenLoop, iter_image_tokens

PROMPT = "A red fox in the snow"
STEPS = 24  # > warm-up + verification steps, so plain replays run too


@pytest.fixture(autouse=True)
def clean_state(monkeypatch, loaded_tiny):
    monkeypatch.delenv(cuda_graphs.ENV_SWITCH, raising=False)
    monkeypatch.delenv(cuda_graphs.ZERO_GPU_ENV, raising=False)
    forget(loaded_tiny.model)
    yield
    forget(loaded_tiny.model)


def first_tokens(loaded, request: ImageRequest, steps: int = STEPS) -> torch.Tensor:
    for done, tokens in iter_image_tokens(loaded, request):
        if done == steps:
            return tokens[:, :steps].clone()
    raise AssertionError("the loop ended early")


def request(loaded, **overrides) -> ImageRequest:
    settings = dict(seed=7, num_images=2, temperature=0.9, top_p=0.9, preview_mode="off")
    return image_request(loaded, PROMPT, **(settings | overrides))


def forget(model) -> None:
    """Forget what the fast path learnt about `model` (verified or disabled)."""
    cuda_graphs._status.pop(model, None)


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


def test_graph_path_gives_the_eager_tokens_and_is_verified_once(loaded_tiny, pretend_cuda, monkeypatch):
    captures, _ = pretend_cuda
    loop = ImageTokenLoop(loaded_tiny, request(loaded_tiny))
    assert loop.fast is not None and loop.fast.verify_left == cuda_graphs.VERIFY_STEPS
    fast = first_tokens(loaded_tiny, request(loaded_tiny))
    assert cuda_graphs.status(loaded_tiny.model) == cuda_graphs.VERIFIED
    assert captures == [{"embeds": (4, 1, 128), "mask": tuple(loop.attention_mask.shape)}]
    assert ImageTokenLoop(loaded_tiny, request(loaded_tiny)).fast.verify_left == 0  # checked once per model
    again = first_tokens(loaded_tiny, request(loaded_tiny))
    monkeypatch.setenv(cuda_graphs.ENV_SWITCH, "0")
    assert ImageTokenLoop(loaded_tiny, request(loaded_tiny)).fast is None
    eager = first_tokens(loaded_tiny, request(loaded_tiny))
    assert torch.equal(fast, eager) and torch.equal(again, eager)


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


def test_whole_request_with_the_graph_path_matches_eager(loaded_tiny, pretend_cuda, monkeypatch):
    fast = generate_image_tokens(loaded_tiny, request(loaded_tiny, num_images=1))
    monkeypatch.setenv(cuda_graphs.ENV_SWITCH, "0")
    assert torch.equal(fast, generate_image_tokens(loaded_tiny, request(loaded_tiny, num_images=1)))


# --- real CUDA graphs ----------------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CUDA graphs)")


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
    monkeypatch.setenv(cuda_graphs.ENV_SWITCH, "0")
    assert torch.equal(fast, generate_image_tokens(loaded, request(loaded)))
