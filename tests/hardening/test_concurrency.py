"""Many users at once on the real tiny model: every request answered once, with its own answer, one at a time.

Measured (printed with -s): 50 concurrent /chat users, each with its own Client, all answered with exactly the
answer their seed gives when run alone; chats and images mixed, images cancelled while running; the language
model's forward never entered by two requests at once (forward hooks) and `lock.max_active == 1`.
"""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from support.meters import ModelUseCounter, lock_idle, wait_until
from support.serving import chat_args, chat_message, image_args, new_client, served

from janus_demo.launch.settings import Settings

USERS = 50
TOKENS = 6


@pytest.fixture
def model_use(loaded_tiny, tiny_backend):
    """Forward hooks on the language model (chat and image generation both run through it)."""
    counter = ModelUseCounter(loaded_tiny.model.model.language_model)
    tiny_backend.lock.max_active = 0
    yield counter
    counter.remove()


@pytest.fixture(scope="module")
def roomy_app(tiny_backend):
    """The tiny app with room in the queue for every user of these tests (the full-queue case is tested apart),
    served as on a Space: each user is a visitor at an address of its own."""
    with served(tiny_backend, queue_size=64, settings=Settings(proxy_hops=1)) as (_, url):
        yield url


def ask(url, download_dir, seed):
    client = new_client(url, download_dir, visitor=seed)
    try:
        job = client.submit(chat_message(f"request {seed}"), *chat_args(TOKENS, 1.0, 0.95, seed), api_name="/chat")
        answer, status = job.result(timeout=120)
        return seed, answer, status
    finally:
        client.close()


def answer_alone(backend, seed):
    chunks = list(backend.chat({"text": f"request {seed}", "files": []}, [], TOKENS, 1.0, 0.95, seed))
    return chunks[-1].text


def test_50_concurrent_chats_are_all_answered_once_and_one_at_a_time(roomy_app, tiny_backend, model_use, tmp_path):
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=USERS) as pool:
        results = list(pool.map(lambda seed: ask(roomy_app, tmp_path / str(seed), seed), range(1, USERS + 1)))
    elapsed = time.monotonic() - start
    assert tiny_backend.lock.max_active == 1
    assert model_use.max_inside == 1
    expected = {seed: answer_alone(tiny_backend, seed) for seed in range(1, USERS + 1)}
    distinct = len(set(expected.values()))
    assert distinct >= USERS * 0.8, "most seeds must give distinct answers for this test to see swaps"
    assert sorted(seed for seed, _, _ in results) == list(range(1, USERS + 1))
    for seed, answer, status in results:
        assert answer == expected[seed], f"user {seed} got someone else's answer"
        assert "tokens/s" in status
    print(f"\n[hardening] {USERS} chats at once: all answered in {elapsed:.1f} s, {distinct} distinct, max_active 1")


def test_chats_run_one_at_a_time_beside_images_drawn_by_one_worker(roomy_app, tiny_backend, loaded_tiny, tmp_path):
    """Chats share the model lock (one at a time); images go to the scheduler's one worker (one batch at a time),
    beside the chats; cancelling an image frees gradio's slot at once while its step still runs. Forward hooks
    on the text head (chat) and on the image head (drawing) each see one run at a time."""
    from janus_demo.model import internals

    lock, scheduler, chats = tiny_backend.lock, tiny_backend.scheduler, 6
    lock.max_active = 0
    text_head = ModelUseCounter(loaded_tiny.model.get_output_embeddings())
    image_head = ModelUseCounter(internals.generation_head(loaded_tiny.model))
    painter_a, painter_b = new_client(roomy_app, tmp_path / "a", 201), new_client(roomy_app, tmp_path / "b", 202)
    try:
        with ThreadPoolExecutor(max_workers=chats) as pool:
            image_a = painter_a.submit(
                "a red fox", *image_args(seed=1, guidance_scale=1.0), api_name="/generate_images"
            )
            wait_until(lambda: scheduler.busy, timeout=60)
            asked = [pool.submit(ask, roomy_app, tmp_path / f"c{n}", n) for n in range(1, chats + 1)]
            image_b = painter_b.submit(
                "a blue fox", *image_args(seed=2, guidance_scale=1.0), api_name="/generate_images"
            )
            wait_until(lambda: text_head.calls > 0, timeout=60)  # a chat answers while the image is drawn
            drawing_during_chat = scheduler.busy
            image_a.cancel()
            image_b.cancel()
            answers = [future.result() for future in asked]
        wait_until(lambda: lock_idle(tiny_backend) and not scheduler.busy, timeout=120)
    finally:
        text_head.remove(), image_head.remove()
        painter_a.close(), painter_b.close()
    assert sorted(seed for seed, _, _ in answers) == list(range(1, chats + 1))
    assert all("tokens/s" in status for _, _, status in answers)
    assert drawing_during_chat, "the first chat answered while the image was being drawn"
    assert lock.max_active == 1 and text_head.max_inside == 1 and image_head.max_inside == 1
    print(f"\n[hardening] {chats} chats beside 2 images (cancelled): chats one at a time, one batch at a time")
