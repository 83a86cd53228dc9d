"""`lm_head` in LLM.int8: what its quality figure says, on weights drawn at random and on a real checkpoint.

    HF_HUB_OFFLINE=1 python -m benchmarks.bench_head_quality             # 2048x32768 layers, drawn: seconds
    python -m benchmarks.bench_head_quality --checkpoint deepseek-community/Janus-Pro-1B   # the real lm_head
    python -m benchmarks.bench_head_quality --checkpoint deepseek-community/Janus-Pro-1B --device cuda

Without a checkpoint: a 2048-wide layer of `--vocab` outputs whose weights are drawn N(0, 0.02) ("Gaussian") or
0.02 x Student's t with 3 degrees of freedom ("heavy-tailed"), read by `--positions` N(0, 1) inputs (what an
RMS-normalised hidden state looks like). `benchmarks.bench_quality`'s int8 `lm_head` row (0.88% RMS, 99.2%
top-1) is the Gaussian row here: any layer of that width with such weights gives it; it says nothing about
Janus. With `--checkpoint`: the checkpoint's own `lm_head` reads its own language model's last hidden states
for a few sentences, in bf16 (the reference) and quantized as `--quantization 4bit` keeps it (LLM.int8), and NF4
for scale. Columns as in bench_quality: the largest absolute error, the error's RMS relative to the
reference's, how often the top-1 token is the same.
"""

from __future__ import annotations

import argparse
import copy

import torch

from benchmarks import common
from benchmarks.bench_quality import compare
from janus_demo.model import internals, precision

SENTENCES = (
    "A watercolor painting of a lighthouse on a cliff at sunset.",
    "The tabby cat lies on a red knitted blanket and looks at the camera with green eyes.",
    "Describe this image in one short sentence, then list three colours you can see in it.",
    "Quantizing the output layer saves memory; whether it changes the answers is what this measures.",
)


def quantized_rows(label: str, head: torch.nn.Linear, hidden: torch.Tensor) -> list[list[str]]:
    """`head` on `hidden` in its own dtype, then in LLM.int8 and NF4: one row each."""
    with torch.inference_mode():
        reference = head(hidden).float()
    rows = []
    for mode, name in (("8bit", "LLM.int8"), ("4bit", "NF4")):
        changed = internals.bitsandbytes_linear(
            copy.deepcopy(head), precision.quantization_config(mode, head.weight.dtype)
        )
        with torch.inference_mode():
            rows.append([label, name, *compare(reference, changed(hidden).float())])
    return rows


def drawn_rows(args: argparse.Namespace, device: torch.device) -> list[list[str]]:
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(args.positions, args.width, generator=generator).to(device, torch.bfloat16)
    draws = {
        "Gaussian": lambda shape: torch.randn(shape, generator=generator),
        "heavy-tailed (t, 3 dof)": lambda shape: torch.distributions.StudentT(3.0).sample(shape),
    }
    rows = []
    for name, draw in draws.items():
        torch.manual_seed(0)  # StudentT samples from the global generator
        head = torch.nn.Linear(args.width, args.vocab, bias=False, dtype=torch.bfloat16, device=device)
        with torch.no_grad():
            head.weight.copy_(draw((args.vocab, args.width)) * common.FILL_STD)
        rows += quantized_rows(f"{args.width}x{args.vocab}, {name}", head, hidden)
    return rows


def checkpoint_rows(args: argparse.Namespace, device: torch.device) -> list[list[str]]:
    loaded = common.load_janus_quietly(args.checkpoint, "none", device.type, "bfloat16")
    tokenizer, model = loaded.processor.tokenizer, loaded.model
    ids = torch.cat([tokenizer(text, return_tensors="pt")["input_ids"][0] for text in SENTENCES])[None]
    with torch.inference_mode():
        hidden = internals.language_model(model)(input_ids=ids.to(device)).last_hidden_state[0]
    head = model.get_output_embeddings()
    label = f"{loaded.model_id} lm_head ({head.out_features}x{head.in_features}), {ids.shape[1]} positions"
    return quantized_rows(label, head, hidden)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="a Janus checkpoint (hub id or folder): its own lm_head")
    parser.add_argument("--width", type=int, default=2048, help="inputs of the drawn layers (Janus-Pro-1B: 2048)")
    parser.add_argument("--vocab", type=int, default=32768, help="outputs of the drawn layers")
    parser.add_argument("--positions", type=int, default=128, help="inputs read by the drawn layers")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    common.quiet()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = checkpoint_rows(args, device) if args.checkpoint else drawn_rows(args, device)
    print(f"\n{common.describe_machine(device, args.threads)}.\n")
    headers = ["weights", "lm_head in", "max abs error", "relative RMS error", "top-1 agreement"]
    common.print_table(headers, rows)


if __name__ == "__main__":
    main()
