"""Can a Tar-sized LM learn in-context lookup from scratch within a CPU budget? Associative recall.

VQA-mini's weak questions (colour or place of an object named by its shape) need the LM to find an
entry in its context by content and read what sits beside it, and the tiny Tar fails that lookup
even in text (`vqa_reason.md`). This probes the skill alone, on the simplest task that needs it:
a sequence of P (key, value) token pairs (distinct keys out of 32, values out of 32 more), a
separator, one of the keys; the model must name its value (chance 1/P among the values present).
The same loop trains our `DecoderLM`, a `transformers` LlamaForCausalLM of the same shape (the
reference: a standard implementation) and our `DecoderLM` with `token_shift` (each input vector
also gets a learned projection of the one before it), from scratch, with the LM preset's optimizer (AdamW, lr
1e-3, betas 0.9 / 0.95, weight decay 0.05, bf16 autocast, batch 32, no schedule), and reports
accuracy on 512 fresh sequences every `--every` steps.

    python experiments/recall_probe.py [--pairs 4 8] [--steps 1500] [--every 500]

Results: experiments/results/recall_probe.{json,md}.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from dialect.lm.recall import recall_batch
from dialect.lm.transformer import DecoderLM, LMConfig

try:
    from experiments.report import machine, write_results
except ImportError:  # run as a script from the repo root
    from report import machine, write_results

KEYS = 32  # keys and values each; the vocabulary is keys, values and a separator
KINDS = ("ours", "ours, token shift", "transformers")


def build(kind: str, dim: int, depth: int, heads: int) -> tuple[torch.nn.Module, callable]:
    """-> (model, ids (B, T) -> logits at the last position (B, V))."""
    vocab = 2 * KEYS + 1
    if kind in KINDS[:2]:
        shift = kind == KINDS[1]
        config = LMConfig(vocab_size=vocab, dim=dim, depth=depth, heads=heads, max_len=64, token_shift=shift)
        model = DecoderLM(config)
        return model, lambda x: model(x)[:, -1]
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden = 32 * ((int(dim * 8 / 3) + 31) // 32)  # our SwiGLU's width
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=dim, intermediate_size=hidden, num_hidden_layers=depth,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=64,
        tie_word_embeddings=False,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    return model, lambda x: model(x).logits[:, -1]


def run(kind: str, pairs: int, steps: int, every: int, seed: int, shape: tuple[int, int, int]) -> dict:
    torch.manual_seed(seed)
    model, last_logits = build(kind, *shape)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05)
    train_gen, eval_gen = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(10_000 + seed)
    curve, t0 = [], time.perf_counter()
    for step in range(1, steps + 1):
        x, y = recall_batch(32, pairs, KEYS, train_gen)
        with torch.autocast("cpu", torch.bfloat16):
            loss = F.cross_entropy(last_logits(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % every == 0 or step == steps:
            with torch.no_grad():
                x, y = recall_batch(512, pairs, KEYS, eval_gen)
                acc = (last_logits(x).argmax(-1) == y).float().mean().item()
            curve.append({"step": step, "loss": round(loss.item(), 4), "accuracy": round(acc, 4)})
            print(f"{kind} P={pairs} step {step}: loss {loss.item():.3f}, accuracy {acc:.3f}", flush=True)
    return {"model": kind, "pairs": pairs, "curve": curve, "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="experiments/results/recall_probe")
    args = ap.parse_args()
    shape = (256, 4, 4)  # the tiny Tar LM: dim, depth, heads
    rows = [
        run(kind, pairs, args.steps, args.every, args.seed, shape) for pairs in args.pairs for kind in KINDS
    ]
    pairs = " ".join(map(str, args.pairs))
    cmd = f"python experiments/recall_probe.py --pairs {pairs} --steps {args.steps} --every {args.every}"
    steps = [p["step"] for p in rows[0]["curve"]]
    lines = [
        "# Associative recall from scratch: the in-context lookup VQA-mini needs, alone",
        "",
        f"Command: `{cmd}`; an LM of the tiny Tar's shape (dim 256, depth 4, heads 4): ours, ours with "
        "`token_shift`, and a `transformers` Llama of the same shape, from scratch, AdamW lr 1e-3 "
        "(betas 0.9 / 0.95, weight decay 0.05), bf16 autocast, batch 32; accuracy on 512 fresh "
        f"sequences (chance: 1 / pairs among the values present). {machine()}.",
        "",
        "| model | pairs | " + " | ".join(f"step {s}" for s in steps) + " | minutes |",
        "|---|---|" + "---|" * (len(steps) + 1),
    ]
    for r in rows:
        accs = " | ".join(f"{p['accuracy']:.3f}" for p in r["curve"])
        lines.append(f"| {r['model']} | {r['pairs']} | {accs} | {r['seconds'] / 60:.1f} |")
    result = {"command": cmd, "machine": machine(), "rows": rows}
    write_results(Path(args.out), result, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
