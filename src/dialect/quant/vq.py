"""The vector quantizer: `z_q, ids, aux = quantizer(z)` and `quantizer.lookup(ids)`.

z is channel-last, shape (..., D), any float dtype; z_q has z's shape and dtype; ids is int64 of
shape z.shape[:-1] with values in [0, K); aux holds fp32 scalars `loss` (= codebook_weight *
codebook_loss + commitment * commit_loss), `codebook_loss` = mean ||z_q - sg(z)||^2 and
`commit_loss` = mean ||z - sg(z_q)||^2 (sg = stop-gradient). The lookup runs in fp32 with autocast
disabled, whatever the caller's precision.

TA-Tok's choices (shared/papers/tar.md): cosine metric (z and codes L2-normalised, so z_q and the
losses live on the unit sphere), a text-aligned codebook C = L2norm(W E + b), codebook weight 1.0,
commitment 0.25, no entropy loss, optional stochastic codes in training drawn from
softmax(cos_sim / tau) with tau = 0.03, deterministic argmax at inference.

Which code the VQ losses pull when codes are sampled (`pull`; the paper does not say): "sampled",
the code the forward used, or "nearest", the argmax. Pulling sampled codes pulls every code within
about tau of a frequent vector onto it: in our tiny TA-Tok the empty canvas cells had 51 codes
within 0.03 of the best (the best two 0.003 apart), so which of them a cell got was an accident of
tiny feature changes (2,576 distinct codes over the empty cells of 1,500 scenes). Pulling the
nearest left 8 codes there (1,006 distinct) and kept the per-object probes (shape 0.976, colour
0.986 at the finest tokens, vs 0.957 / 0.973); experiments/results/tatok_object_cells.md.

Straight-through gradient: the paper's `z + (z_q - z).detach()`, written as
`z_q.detach() + (z - z.detach())`: the same gradient (identity to z, none to the codebook through
z_q), and the value is z_q bit-exactly, so in eval mode `z_q == quantizer.lookup(ids)`.

Speed: the deterministic cosine argmax (inference, and training without stochastic codes) scores
the codes in bf16 where bf16 matmuls are fast and rescores a shortlist in fp32, certified to give
the fp32 search's ids (`dialect.quant.search`; 2.8x faster on TA-Tok's finest tokens here); set
`VectorQuantizer.bf16_search = False` for the plain fp32 search.

Memory: similarities are computed in blocks of `chunk_size` vectors against all K codes (a block
holds chunk_size x K fp32 values: 128 MiB at the default 512 and K = 65,536); each row's argmax
sees the full codebook, so the result equals the unchunked one.

Dead-code restart (learned codebooks only; a text-aligned code is W E_k, tied to its word through
the shared W, and cannot be moved on its own): a code unused for `dead_after` training forward
calls, counted on the histogram summed over DDP ranks, is re-initialised at the start of the next
training forward to an encoder output of the current batch. Every rank contributes randomly chosen
local vectors, all ranks gather them (all_gather copies bytes) and apply the same deterministic
pick (:func:`restart_vectors`), so codebooks stay identical across ranks. Optimizer moments of a
restarted row are kept. Every rank must see at least one vector per training step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from dialect.core.errors import DialectError
from dialect.core.hardware import fast_bf16
from dialect.core.pretrained import Pretrained
from dialect.quant.codebooks import Codebook, LearnedCodebook, TextAlignedCodebook
from dialect.quant.embeddings import RULES
from dialect.quant.search import SHORTLIST, certified_argmax
from dialect.quant.usage import all_gather, all_reduce_sum, check_ids, code_histogram, world_size

METRICS = ("cosine", "euclidean")
CODEBOOKS = ("text", "learned")
PULLS = ("sampled", "nearest")


@dataclass
class VQConfig:
    dim: int = 384  # D: width of z and of the codes (TA-Tok: the LLM's hidden size)
    num_codes: int = 8192  # K (the paper: 65,536 rows of Qwen2.5's table; MiniLM "words" supplies 22,501)
    metric: str = "cosine"  # "cosine": z and codes L2-normalised (paper) | "euclidean": squared L2
    codebook: str = "text"  # "text": C = L2norm(W E + b), E frozen (paper) | "learned": free K x D
    source: str = ""  # text codebook: local Hugging Face LM folder giving E; "" = bundled MiniLM
    rule: str = "words"  # text codebook: select_rows rule picking the K rows, "words" | "all"
    tokens: list[str] = field(default_factory=list)  # the K chosen token strings; filled on construction
    embed_dim: int = 0  # De, width of E; filled on construction (0 = take it from `source`)
    codebook_weight: float = 1.0  # weight of the codebook loss ||z_q - sg(z)||^2
    commitment: float = 0.25  # weight of the commitment loss ||z - sg(z_q)||^2
    stochastic: bool = False  # training only: sample ids from softmax(similarity / tau), not argmax
    tau: float = 0.03  # temperature of the stochastic sampling (> 0)
    # with stochastic codes: the code the codebook and commitment losses pull, "sampled" (the one
    # the forward uses) or "nearest" (the argmax; the forward still uses the sampled one)
    pull: str = "sampled"
    chunk_size: int = 512  # vectors per similarity block (block = chunk_size x K fp32); 0 = one block
    restart_dead_codes: bool = False  # learned codebook only: re-initialise codes unused for a while
    dead_after: int = 100  # training forward calls without use before a code is restarted


def sample_rows(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One id per row of probs (N, K) (rows >= 0, summing to ~1), drawn with probability
    proportional to the row: inverse-CDF sampling, one uniform per row against the row's cumulative
    sum (scaled by its total, so rounding never leaves a gap). The same distribution as
    `torch.multinomial(probs, 1)`, which on the CPU draws an exponential variate per *entry*
    (N x K of them): at TA-Tok's finest scale (2,048 x 4,096 per batch of 32) 135 ms against 12 ms
    here, and the whole training step 0.27 s against 0.15 s (`benchmarks/bench_code_sampling.py`)."""
    cdf = probs.cumsum(dim=-1)  # (N, K)
    u = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device, dtype=cdf.dtype)
    # right=True: the first index whose cdf exceeds u * total, so zero-probability entries never win
    ids = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).squeeze(1)
    return ids.clamp_(max=probs.shape[1] - 1)


def restart_vectors(gathered: torch.Tensor, num_dead: int) -> torch.Tensor:
    """(num_dead, D) replacements from candidates gathered from every rank, (world, M, D).

    Deterministic (rank 0's first candidate, rank 1's first, ..., then everyone's second, ...), so
    identical gathered candidates give identical codebooks on every rank; the randomness lies in
    which local vectors each rank offered.
    """
    world, m, d = gathered.shape
    if world * m < num_dead:
        raise ValueError(f"{world * m} candidates cannot replace {num_dead} dead codes")
    return gathered.transpose(0, 1).reshape(world * m, d)[:num_dead]


class VectorQuantizer(nn.Module, Pretrained):
    """Nearest-code quantizer over a :class:`Codebook`; see the module docstring for the contract.

    For a text codebook built from a fresh config (empty `tokens`), the constructor reads the
    language model named by `source`, picks the rows and records the chosen strings and De in
    `config.tokens` / `config.embed_dim` (in place, so a parent model's saved config is
    self-contained). With `tokens` already set (a saved config), E is left zero for the checkpoint
    to fill: `from_pretrained` does that.
    """

    config_class = VQConfig
    bf16_search = True  # False: the deterministic argmax always runs the plain fp32 search

    def __init__(self, config: VQConfig) -> None:
        super().__init__()
        _validate(config)
        self.config = config
        self.codebook: Codebook = _build_codebook(config)
        if config.restart_dead_codes:
            # training forward calls since each code was last chosen, summed over ranks
            self.register_buffer("unused_steps", torch.zeros(config.num_codes, dtype=torch.long))
        self._codes_t: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor]] = {}  # dtype -> (codes, codes^T)
        self._checked = False  # codebook.check_trainable() passed (checked at the first training call)

    @property
    def num_codes(self) -> int:
        return self.config.num_codes

    def forward(
        self, z: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """z (..., D) -> z_q (..., D) in z's dtype, ids (...) int64, aux (fp32 scalar losses).

        `generator` (a torch.Generator on z's device) drives the stochastic sampling only, i.e. in
        training with `stochastic` on; otherwise ids are the deterministic argmax.
        """
        cfg = self.config
        if z.ndim == 0 or z.shape[-1] != cfg.dim:
            raise DialectError(
                f"the quantizer expects vectors of shape (..., {cfg.dim}), got {tuple(z.shape)}"
            )
        with torch.autocast(z.device.type, enabled=False):
            x = z.reshape(-1, cfg.dim).float()  # (N, D)
            if cfg.metric == "cosine":
                x = F.normalize(x, dim=-1)
            if self.training and not self._checked:
                self.codebook.check_trainable()
                self._checked = True
            track = self.training and cfg.restart_dead_codes
            if track:
                self._restart_dead(x.detach())
            codes = self.codebook.codes()  # (K, D) fp32
            sample = self.training and cfg.stochastic
            ids, pull_ids = self._search(x.detach(), codes, sample, generator)  # (N,)
            q = codes.index_select(0, ids)  # (N, D), carries the codebook's gradient
            pulled = q if pull_ids is ids else codes.index_select(0, pull_ids)
            if track:
                self._count_usage(ids)
            if x.shape[0]:
                codebook_loss = F.mse_loss(pulled, x.detach())
                commit_loss = F.mse_loss(x, pulled.detach())
            else:
                codebook_loss = commit_loss = q.sum() * 0.0
            loss = cfg.codebook_weight * codebook_loss + cfg.commitment * commit_loss
            # straight-through; the value is q exactly (x - x.detach() == 0)
            out = q.detach() + (x - x.detach()) if x.requires_grad else q
        aux = {"loss": loss, "codebook_loss": codebook_loss, "commit_loss": commit_loss}
        return out.reshape(z.shape).to(z.dtype), ids.reshape(z.shape[:-1]), aux

    @torch.no_grad()
    def anchored_ids(self, z: torch.Tensor, anchor: torch.Tensor, margin: float) -> torch.Tensor:
        """z (..., D), anchor ids (...) -> ids (...): the anchor's code wherever its similarity to z
        is within `margin` of the best code's, else the best code (the argmax, as in eval).

        For the target of an edit, anchored to its source's codes: where the two images agree, the
        target's features still move with the global context (our tiny TA-Tok: 66% of the codes
        at pixel-identical cells differed between an edit's source and target) and a near-tie
        flips; keeping the source's code there costs at most `margin` of similarity and makes the
        edit local in token space (experiments/results/edit_anchor.md). margin 0 keeps the argmax
        (an anchor exactly tied with the best is kept)."""
        if margin < 0:
            raise DialectError(f"margin must be >= 0, got {margin}")
        if anchor.shape != z.shape[:-1]:
            raise DialectError(f"anchor ids {tuple(anchor.shape)} must match z's {tuple(z.shape[:-1])}")
        check_ids(anchor, self.num_codes)
        with torch.autocast(z.device.type, enabled=False):
            x = z.reshape(-1, self.config.dim).float()
            if self.config.metric == "cosine":
                x = F.normalize(x, dim=-1)
            codes_t = self._transposed(self.codebook.codes())
            bias = self._bias(codes_t)
            a = anchor.reshape(-1).to(x.device).long()
            ids = torch.empty_like(a)
            step = self.config.chunk_size or max(x.shape[0], 1)
            for s in range(0, x.shape[0], step):
                sim = self._similarity(x[s : s + step], codes_t, bias)  # (n, K)
                best, best_ids = sim.max(dim=-1)
                kept = sim.gather(1, a[s : s + step, None])[:, 0] >= best - margin
                ids[s : s + step] = torch.where(kept, a[s : s + step], best_ids)
        return ids.reshape(anchor.shape)

    def lookup(self, ids: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Codes of integer ids (...) in [0, K) -> (..., D) fp32; out-of-range ids: DialectError."""
        codes = self.codebook.codes()
        ids = torch.as_tensor(ids, device=codes.device)
        check_ids(ids, self.num_codes)
        return codes[ids.long()]

    def codebook_words(self, ids: torch.Tensor | Sequence[int]) -> list:
        """Source words of code ids (text codebook only), nested like `ids`."""
        return self.codebook.words(ids)

    def _transposed(self, codes: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(D, K) contiguous detached copy of the codes in `dtype` (a faster matmul operand), kept
        while the codebook returns the same cached tensor."""
        cached = self._codes_t.get(dtype)
        if cached is not None and cached[0] is codes:
            return cached[1]
        codes_t = codes.detach().t().to(dtype).contiguous()
        if codes.requires_grad:
            self._codes_t.pop(dtype, None)
        else:
            self._codes_t[dtype] = (codes, codes_t)
        return codes_t

    def _search(
        self, x: torch.Tensor, codes: torch.Tensor, sample: bool, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, D), codes (K, D), fp32 -> (ids (N,), the ids the VQ losses pull (N,)): ids are
        the argmax, or a sample, of the similarity; the pulled ids are `ids` itself unless sampled
        codes pull the nearest (`pull="nearest"`), then the argmax, computed only then.

        Similarity: cosine for the cosine metric (x and codes are unit vectors); for euclidean,
        2 x.c - |c|^2 = |x|^2 - |x - c|^2, i.e. minus the squared distance up to a per-row constant,
        which neither the argmax nor the softmax sees. A cosine argmax alone may take the
        certified bf16 shortlist (`_shortlisted`).
        """
        n = x.shape[0]
        step = self.config.chunk_size or max(n, 1)
        if not sample and self._shortlisted(x):
            codes_t16 = self._transposed(codes, torch.bfloat16)
            chunks = [certified_argmax(x[s : s + step], codes, codes_t16)[0] for s in range(0, n, step)]
            ids = torch.cat(chunks)
            return ids, ids
        codes_t = self._transposed(codes)
        bias = self._bias(codes_t)
        ids = torch.empty(n, dtype=torch.long, device=x.device)
        nearest = sample and self.config.pull == "nearest"
        best = torch.empty_like(ids) if nearest else ids
        for s in range(0, n, step):
            sim = self._similarity(x[s : s + step], codes_t, bias)  # (n, K)
            if sample:
                probs = torch.softmax(sim / self.config.tau, dim=-1)
                ids[s : s + step] = sample_rows(probs, generator)
            if not sample or nearest:
                best[s : s + step] = sim.argmax(dim=-1)
        return ids, best

    def _shortlisted(self, x: torch.Tensor) -> bool:
        """Whether the argmax of x (N, D) takes the bf16 shortlist: cosine metric, fast bf16 on
        x's device and a codebook much larger than the shortlist (here it is faster from 4 rows
        on: 1.4x at 4, 2.7x at 256, 2.2x at 4,096 in chunks of 512)."""
        return (
            self.bf16_search
            and self.config.metric == "cosine"
            and self.num_codes >= 16 * SHORTLIST
            and fast_bf16(x.device)
        )

    def _bias(self, codes_t: torch.Tensor) -> torch.Tensor | None:
        """The per-code term of the euclidean similarity, -|c|^2 (K,); None for cosine."""
        return -(codes_t * codes_t).sum(0) if self.config.metric == "euclidean" else None

    @staticmethod
    def _similarity(xs: torch.Tensor, codes_t: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """(n, D) x (D, K) -> (n, K): x.c (cosine), or 2 x.c - |c|^2 (euclidean; see `_search`)."""
        return xs @ codes_t if bias is None else torch.addmm(bias, xs, codes_t, alpha=2.0)

    @torch.no_grad()
    def _count_usage(self, ids: torch.Tensor) -> None:
        hist = all_reduce_sum(code_histogram(ids, self.num_codes))  # (K,) summed over ranks
        self.unused_steps.add_(1).masked_fill_(hist > 0, 0)

    @torch.no_grad()
    def _restart_dead(self, x: torch.Tensor) -> int:
        """Move codes unused for `dead_after` steps onto vectors of x (N, D); returns how many."""
        dead = torch.nonzero(self.unused_steps >= self.config.dead_after).squeeze(1)  # same on all ranks
        if dead.numel() == 0 or x.shape[0] == 0:
            return 0
        gathered = all_gather(self._restart_candidates(x, dead.numel()))  # (world, M, D)
        self._apply_restart(dead, gathered)
        return dead.numel()

    def _restart_candidates(self, x: torch.Tensor, num_dead: int) -> torch.Tensor:
        """(M, D): this rank's offer, M = ceil(num_dead / world) random rows of x (N, D)."""
        m, n = -(-num_dead // world_size()), x.shape[0]
        pick = torch.randperm(n, device=x.device)[:m] if n >= m else torch.randint(n, (m,), device=x.device)
        return x[pick]

    def _apply_restart(self, dead: torch.Tensor, gathered: torch.Tensor) -> None:
        """Reset codes `dead` (num_dead,) from every rank's candidates `gathered` (world, M, D)."""
        self.codebook.reset_codes_(dead, restart_vectors(gathered, dead.numel()))
        self.unused_steps[dead] = 0

    def extra_repr(self) -> str:
        c = self.config
        return f"codebook={c.codebook}, K={c.num_codes}, D={c.dim}, metric={c.metric}"


def _validate(cfg: VQConfig) -> None:
    """DialectError for a config that names an unknown option or an impossible value."""
    for name, value, allowed in (
        ("metric", cfg.metric, METRICS),
        ("codebook", cfg.codebook, CODEBOOKS),
        ("rule", cfg.rule, RULES),
        ("pull", cfg.pull, PULLS),
    ):
        if value not in allowed:
            raise DialectError(f"VQConfig.{name} must be one of {', '.join(allowed)}, got {value!r}")
    if cfg.dim < 1 or cfg.num_codes < 1:
        raise DialectError(f"VQConfig needs dim >= 1 and num_codes >= 1, got {cfg.dim} and {cfg.num_codes}")
    if cfg.tau <= 0 or cfg.chunk_size < 0 or cfg.dead_after < 1:
        raise DialectError("VQConfig needs tau > 0, chunk_size >= 0 and dead_after >= 1")
    if cfg.codebook_weight < 0 or cfg.commitment < 0:
        raise DialectError("VQConfig loss weights (codebook_weight, commitment) must be >= 0")
    if cfg.codebook == "text" and cfg.restart_dead_codes:
        raise DialectError(
            "restart_dead_codes needs a learned codebook: a text-aligned code is W E_k and cannot be "
            "moved on its own"
        )
    if cfg.codebook == "learned" and cfg.tokens:
        raise DialectError("VQConfig.tokens belongs to a text codebook; leave it empty for a learned one")
    if cfg.tokens and (len(cfg.tokens) != cfg.num_codes or cfg.embed_dim < 1):
        raise DialectError(
            f"VQConfig.tokens lists {len(cfg.tokens)} tokens for {cfg.num_codes} codes "
            f"(embed_dim={cfg.embed_dim}); a saved text codebook needs exactly K tokens and embed_dim >= 1"
        )


def _build_codebook(cfg: VQConfig) -> Codebook:
    if cfg.codebook == "learned":
        return LearnedCodebook(cfg.num_codes, cfg.dim, normalize=cfg.metric == "cosine")
    if cfg.tokens:  # a saved config: E comes from the checkpoint
        return TextAlignedCodebook(cfg.num_codes, cfg.embed_dim, cfg.dim, cfg.tokens)
    book = TextAlignedCodebook.from_language_model(cfg.source, cfg.num_codes, cfg.dim, cfg.rule)
    if cfg.embed_dim and cfg.embed_dim != book.embed_dim:
        raise DialectError(
            f"VQConfig.embed_dim is {cfg.embed_dim} but the embedding table of "
            f"{cfg.source or 'MiniLM'} is {book.embed_dim} wide"
        )
    cfg.tokens, cfg.embed_dim = list(book.tokens), book.embed_dim  # recorded for the saved config
    return book
