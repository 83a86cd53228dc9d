"""Several requests' images in one loop: a batch whose rows step together, each request keeping its own settings.

    batch = ImageBatch(loaded, [request_a, request_b])
    while batch.members:                     # one forward per step for every row of every request
        for member in batch.advance():       # the members that took a step: member.step, member.tokens
            ...
        for member in batch.finished():      # done (or stopped by its owner): its rows leave the batch
            batch.leave(member)

On a GPU one decode step reads all the weights once however many rows it carries, so requests drawn together
cost about what one costs; on a CPU four 1-image requests in one loop took 1.26x one (tiny model). A request
keeps everything of its own: prompt, seed (its own `torch.Generator`, so its draws do not depend on its
neighbours), guidance, temperature, top-p, forced tokens, number of images. Its rows are
[conditional x n; unconditional x n] as in `image_loop`; prompts of different lengths are padded on the left
and masked, with position ids counted from each row's first real token, so a request's scores are those it gets
alone up to float rounding in the matrix products (tested: the same tokens, fp32 on CPU). A member leaves at a
step boundary (`leave`: its rows are dropped from the KV cache), so a finished or stopped request stops costing.

Written over the model's public pieces and transformers' `DynamicCache` (whose `batch_select_indices` drops
rows); the one-request loop (`image_loop.ImageTokenLoop`, with CUDA graphs) stays the path for a batch of one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from janus_demo.model import internals, memory
from janus_demo.model.image_loop import (
    FitScores,
    ImageRequest,
    forced_prefix,
    guidance_input_ids,
    guided_logits,
    pad_id,
    pick_tokens,
)
from janus_demo.model.loading import LoadedJanus


@dataclass(eq=False)
class Member:
    """One request in the batch: its rows, its own generator and token grid, and how far it has come."""

    request: ImageRequest
    stop: threading.Event | None
    generator: torch.Generator
    tokens: torch.Tensor  # (num_images, grid tokens)
    forced: torch.Tensor | None
    forced_at: list[bool]
    fit: FitScores  # the forced tokens after the first drawn one, scored as in the one-request loop
    step: int = 0  # tokens of each image drawn so far
    rows: list[int] = field(default_factory=list)  # its rows in the batch: conditional, then unconditional

    @property
    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()


class ImageBatch:
    """The state of a batch: members, KV cache, pending input embeddings, attention mask and positions."""

    def __init__(
        self, loaded: LoadedJanus, requests: list[ImageRequest], stops: list[threading.Event | None] | None = None
    ) -> None:
        self.model, self.device = loaded.model, loaded.device
        self.total = loaded.image_shape.tokens
        stops = stops or [None] * len(requests)
        self.members = [self._member(request, stop) for request, stop in zip(requests, stops, strict=True)]
        self._prefill_inputs(loaded)

    def _member(self, request: ImageRequest, stop: threading.Event | None) -> Member:
        forced = None if request.forced_tokens is None else request.forced_tokens.to(self.device)
        mask = request.forced_mask
        forced_at = [False] * self.total if mask is None or forced is None else mask.bool().tolist()
        return Member(
            request=request,
            stop=stop,
            generator=torch.Generator(device=self.device).manual_seed(int(request.seed)),
            tokens=torch.zeros((request.num_images, self.total), dtype=torch.long, device=self.device),
            forced=forced,
            forced_at=forced_at,
            fit=FitScores(forced_at, request.num_images, self.device),
        )

    @torch.inference_mode()
    def _prefill_inputs(self, loaded: LoadedJanus) -> None:
        """Every member's rows (prompt, then its leading forced tokens), padded on the left to one length."""
        embed, rows = self.model.get_input_embeddings(), []
        for member in self.members:
            ids = guidance_input_ids(
                member.request.prompt_ids, member.request.num_images, member.request.guided, pad_id(loaded)
            ).to(self.device)
            embeds = embed(ids)
            prefix = 0 if member.forced is None else forced_prefix(member.request.forced_mask, self.total)
            if prefix:  # the leading forced tokens go in with the prompt, as in the one-request loop
                kept = member.forced[:prefix].expand(ids.shape[0], prefix)
                kept = self.model.prepare_embeddings_for_image_generation(kept).to(embeds.dtype)
                embeds = torch.cat([embeds, kept], dim=1)
                member.tokens[:, :prefix] = member.forced[:prefix]
            member.step = prefix
            member.rows = list(range(len(rows), len(rows) + embeds.shape[0]))
            rows.extend(embeds)
        longest = max(row.shape[0] for row in rows)
        self.inputs_embeds = torch.stack([_pad_left(row, longest) for row in rows])
        self.attention_mask = torch.stack(
            [_pad_left(torch.ones(row.shape[0], dtype=torch.long, device=self.device), longest) for row in rows]
        )
        self.cache = DynamicCache(config=self.model.config.get_text_config(decoder=True))

    @torch.inference_mode()
    def advance(self) -> list[Member]:
        """One forward for every row, then one token for each member that is not done: return those members."""
        positions = (self.attention_mask.cumsum(-1) - 1).clamp(min=0)[:, -self.inputs_embeds.shape[1] :]
        hidden = internals.language_model(self.model)(
            inputs_embeds=self.inputs_embeds,
            attention_mask=self.attention_mask,
            position_ids=positions,
            past_key_values=self.cache,
            use_cache=True,
        ).last_hidden_state[:, -1, :]
        scores = internals.generation_head(self.model)(hidden).float()
        feed = torch.zeros(scores.shape[0], dtype=torch.long, device=self.device)
        moved = []
        for member in self.members:
            if member.step >= self.total or member.stopped:
                continue
            feed[member.rows] = self._next_tokens(member, scores[member.rows]).repeat(1 + member.request.guided)
            moved.append(member)
        self.inputs_embeds = self.model.prepare_embeddings_for_image_generation(feed.unsqueeze(-1))
        ones = torch.ones((scores.shape[0], 1), dtype=self.attention_mask.dtype, device=self.device)
        self.attention_mask = torch.cat([self.attention_mask, ones], dim=1)
        return moved

    def _next_tokens(self, member: Member, scores: torch.Tensor) -> torch.Tensor:
        """The member's next token per image: forced (and scored) where its mask says so, else sampled with its
        generator."""
        request, step = member.request, member.step
        logits = guided_logits(scores, request.num_images, request.guidance_scale)
        if member.forced_at[step]:
            tokens = member.forced[step].expand(request.num_images)
            member.fit.add(step, logits, member.forced[step])
        else:
            tokens = pick_tokens(logits, request.temperature, request.top_p, member.generator)
        member.tokens[:, step] = tokens
        member.step += 1
        return tokens

    def finished(self) -> list[Member]:
        """Members whose grid is complete, or whose owner stopped them."""
        return [member for member in self.members if member.step >= self.total or member.stopped]

    @torch.inference_mode()
    def leave(self, member: Member) -> None:
        """Drop a member's rows from the batch (KV cache, pending inputs, mask) at a step boundary."""
        self.members.remove(member)
        keep = sorted(row for other in self.members for row in other.rows)
        if not keep:
            return
        index = torch.tensor(keep, device=self.device)
        self.cache.batch_select_indices(index)
        self.inputs_embeds, self.attention_mask = self.inputs_embeds[index], self.attention_mask[index]
        renumber = {old: new for new, old in enumerate(keep)}
        for other in self.members:
            other.rows = [renumber[row] for row in other.rows]


def batch_fits(loaded: LoadedJanus, requests: list[ImageRequest]) -> bool:
    """On CUDA, whether these requests drawn together fit in free GPU memory now (the per-image estimate of
    `janus_demo.model.memory`, every prompt padded to the longest); always True off CUDA."""
    if loaded.device.type != "cuda":
        return True
    shape = memory.memory_shape(loaded.model, loaded.dtype)
    longest = max(request.prompt_ids.shape[1] for request in requests)
    needed = memory.SAFETY_BYTES
    for request in requests:
        estimate = memory.estimate_image_memory(shape, longest, request.guided, memory.DECODE_CHUNK)
        needed += estimate.total(request.num_images) - estimate.fixed
    return needed <= memory.available_cuda_bytes(loaded.device)


def _pad_left(row: torch.Tensor, length: int) -> torch.Tensor:
    """`row` (L, ...) with zeros before it, to `length` along its first dimension."""
    pad = torch.zeros((length - row.shape[0], *row.shape[1:]), dtype=row.dtype, device=row.device)
    return torch.cat([pad, row])
