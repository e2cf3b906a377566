"""`TrainConfig`: every knob of the one training loop, with its default and meaning."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    out_dir: str = "runs/default"  # run folder: config.yaml, metrics.jsonl, checkpoint/, model/, samples/
    steps: int = 1000  # optimizer steps
    batch_size: int = 32  # samples per micro-step summed over all ranks (split evenly across ranks)
    grad_accum: int = 1  # micro-steps per optimizer step (effective batch = batch_size * grad_accum)
    lr: float = 3e-4  # peak learning rate (AdamW)
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio at the last step
    warmup_steps: int = 100  # linear warm-up from 0 to lr
    weight_decay: float = 0.05  # applied to matrices/filters only (dim >= 2), never to norms/biases
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    ema_decay: float = 0.0  # EMA of weights (e.g. 0.999); 0 disables; the exported model is the EMA
    precision: str = "auto"  # auto | fp32 | bf16 (auto: bf16 on CUDA and on CPUs with native bf16)
    device: str = "auto"  # auto | cpu | cuda
    activation_checkpointing: bool = False  # recompute each trainable transformer layer in backward
    compile: bool = False  # torch.compile each transformer layer (dialect.nn.compile; CPU: a C++ compiler)
    parallel: str = "ddp"  # under torchrun: ddp (replicated weights) | fsdp (sharded; see train/fsdp.py)
    seed: int = 0  # model init, data order and every random draw of the run
    num_workers: int = 0  # DataLoader worker processes
    log_every: int = 10  # steps between metrics.jsonl rows (and progress-bar refreshes)
    sample_every: int = 0  # steps between sample grids written to samples/ (0: only at the end)
    ckpt_every: int = 500  # steps between checkpoints (the last step always checkpoints)
    resume: bool = True  # continue from out_dir/checkpoint when it exists
    progress: bool = True  # tqdm progress bar on rank 0
