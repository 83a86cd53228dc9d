"""The Hugging Face Hub before a hub model loads: reachable? cached? Answered in seconds.

    hub_status("deepseek-community/Janus-Pro-1B")   # "online", "cached" (hub unreachable) or "missing"

Without this check, `from_pretrained` on a machine that cannot reach the hub retries every request with
back-off (about 2.5 minutes and 60 warnings for a model that is not cached) before it fails.
"""

from __future__ import annotations

import huggingface_hub
from huggingface_hub import constants

REACH_TIMEOUT_S = 4.0  # a working connection answers in well under a second


def hub_reachable(timeout: float = REACH_TIMEOUT_S) -> bool:
    """True if the hub's endpoint answers at all (any HTTP status), within `timeout` seconds, without retries."""
    try:
        huggingface_hub.get_session().head(constants.ENDPOINT, timeout=timeout, follow_redirects=False)
    except Exception:  # noqa: BLE001 - any failure to connect means "not reachable"
        return False
    return True


def is_cached(repo_id: str) -> bool:
    """True if the model's config is in the local hub cache (a download happened before)."""
    try:
        return isinstance(huggingface_hub.try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - an id the cache cannot hold is not cached
        return False


def hub_status(repo_id: str) -> str:
    """'online' (load as usual), 'cached' (hub unreachable, load the cached copy) or 'missing' (neither)."""
    if hub_reachable():
        return "online"
    return "cached" if is_cached(repo_id) else "missing"


def offline_mode() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: the hub is never asked."""
    return constants.is_offline_mode()
