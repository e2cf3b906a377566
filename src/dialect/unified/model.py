"""Tar: one decoder-only LM whose vocabulary holds words and TA-Tok image codes alike.

    image -> frozen TA-Tok -> codes -> image tokens <I..>  (vocabulary ids, `unified.vocab`)
    chat template (`unified.template`) -> one id sequence -> the project's DecoderLM
    loss: next-token cross-entropy on the assistant turns only (the paper's L = -sum log p(u_i | u_<i))

Input images are read at `understand_scale` (the paper: the finest scale for understanding);
output images are written at the scale each training sample draws (`tasks.scale_weights`).
The model carries its frozen TA-Tok so that a saved folder can read images on its own; turning
generated codes back into pixels is the de-tokenizers' job (`detok`), wired up by the pipeline.

Initialisation of the embedding table (`init`, the paper's "LLM initialisation" and its ablations):
    text-aligned  text rows = MiniLM's rows of those pieces; image rows = the TA-Tok codebook
                  C = L2norm(W E) (image token i starts at code i, i.e. at its transformed word);
                  markers as in `random`
    random        image rows and markers ~ N(0, 0.02), like a plain VQ vocabulary
    mean          image rows and markers = the mean of the text rows
Text rows come from MiniLM in every mode: in the paper the LM is pretrained, so only the new rows
differ between the modes, and so it is here. MiniLM and the codebook are 384-d; when the LM width
d differs, the text and codebook rows go through one shared map: the top-d principal directions of
the text and codebook rows (d < 384) or zero-padding (d > 384), so that image codes keep their place among the
words. The mapped rows are then rescaled to the row norm of an N(0, 0.02) init, so every mode
starts the LM at the same scale.

Backbone: by default the LM is the project's `DecoderLM` (`config.lm`). With `hf_lm` naming a local
Hugging Face causal-LM folder (Qwen2, Llama, ...), the LM is that pretrained model behind the same
interface (`lm.hf.HFCausalLM`: forward with a KV cache, embedding table, head, shared `generate`),
so everything below -- losses, constrained decoding, checkpoints -- is one code path. Its own
tokenizer then supplies the text ids (`vocab.text` becomes "lm"), its text rows stay pretrained,
only the new rows are initialised (`init` as above, on the LM's own scale; see `unified.backbone`),
`config.lm` records the backbone's shape and only `lm.max_len` is read from it, and
`save_backbone(dir)` exports a plain `transformers` folder with the grown vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from dialect.core.errors import DialectError
from dialect.core.pretrained import Pretrained, atomic_dir
from dialect.lm import DecoderLM, HFCausalLM, LMConfig, SamplingConfig, load_causal_lm
from dialect.quant.embeddings import load_token_embeddings
from dialect.quant.usage import all_reduce_sum, world_size
from dialect.tokenizers.tatok import TATok, TATokConfig
from dialect.unified import backbone as B
from dialect.unified.grid import IMAGE_POSITIONS, ImageGrid
from dialect.unified.tasks import GUIDANCE_DROPOUT, TEXT_ONLY, TaskConfig, conversation
from dialect.unified.template import ImageSpan, encode_conversation, null_conversation, pad_batch
from dialect.unified.vocab import END, IM_START, TarVocab, VocabConfig

INIT_MODES = ("text-aligned", "random", "mean")


@dataclass
class TarConfig:
    vocab: VocabConfig = field(default_factory=VocabConfig)  # image codes / scales set from the TA-Tok
    tatok: TATokConfig = field(default_factory=TATokConfig)  # the frozen image tokenizer
    lm: LMConfig = field(default_factory=lambda: LMConfig(dim=256, depth=4, heads=4, max_len=256))
    tasks: TaskConfig = field(default_factory=TaskConfig)  # training mix (used by the recipe)
    init: str = "text-aligned"  # text-aligned | random | mean (see the module docstring)
    understand_scale: int = 0  # TA-Tok scale of input images (the paper: finest)
    hf_lm: str = ""  # local Hugging Face causal-LM folder as the backbone; "" = our DecoderLM (`lm`)
    # weight of an assistant text token in the loss, relative to an image token (1 = the plain token
    # mean). An image answer is 64+ tokens and a VQA answer 2, so at 1 the text tokens get about 6%
    # of the tiny preset's gradient; training-only, like `tasks`
    text_loss_weight: float = 1.0
    # positions of image tokens: "1d" = the sequence position only; "2d" = also a learned vector per
    # TA-Tok grid cell (`unified.grid`), so rows, columns and vertical neighbours are explicit
    image_positions: str = "1d"
    # I2I / TI2I prompts: False = the input image, then the instruction (user: [image, text]); True =
    # the instruction, then the image, so the output image begins a fixed number of tokens after the
    # input image ends, whatever the instruction's length: output token j can find input token j at
    # one constant relative offset (RoPE), the easiest possible copy (`unified.tasks.conversation`)
    image_last: bool = False
    # I2T prompts (captions, the first question of a VQA sample, `Dialect.ask`): False = [image,
    # question], as LLaVA and the paper's chat template; True = [question, image], so every image
    # token is computed knowing what is asked (InstructBLIP feeds the instruction to its Q-Former
    # for the same reason): a cell can test locally whether it belongs to the object the question
    # names, instead of the answer having to find that object by attention alone
    question_first: bool = False


class Tar(nn.Module, Pretrained):
    """The unified LM + its vocabulary + its frozen TA-Tok. `training_losses(batch)` trains all
    four tasks from a batch of `unified.tasks` samples.

    `vocab`: a prebuilt vocabulary (default: built from the config). `lm_folder`: a saved Tar's
    `lm/` (backbone architecture and grown tokenizer, weights to be loaded after); by default
    the backbone and its weights come from `config.hf_lm`."""

    config_class = TarConfig

    def __init__(
        self, config: TarConfig, vocab: TarVocab | None = None, lm_folder: Path | None = None
    ) -> None:
        super().__init__()
        if config.init not in INIT_MODES:
            raise DialectError(f"init must be one of {', '.join(INIT_MODES)}, got {config.init!r}")
        if config.image_positions not in IMAGE_POSITIONS:
            raise DialectError(
                f"image_positions must be one of {', '.join(IMAGE_POSITIONS)}, got {config.image_positions!r}"
            )
        if not config.text_loss_weight > 0:
            raise DialectError(f"text_loss_weight must be > 0, got {config.text_loss_weight}")
        self.config = config
        config.vocab.num_image_codes = config.tatok.vq.num_codes
        config.vocab.num_scales = config.tatok.num_scales
        if not 0 <= config.understand_scale < config.tatok.num_scales:
            raise DialectError(f"understand_scale must be in [0, {config.tatok.num_scales})")
        self.tatok = TATok(config.tatok).eval().requires_grad_(False)
        self.lm_tokenizer = None  # the backbone's grown tokenizer (hf_lm only)
        if config.hf_lm:
            if config.lm.token_shift:  # the backbone's own config replaces `lm`: the option would vanish
                raise DialectError("lm.token_shift is an option of the built-in DecoderLM, not of hf_lm")
            self.vocab, self.lm = self._backbone(config, vocab, lm_folder)
        else:
            if config.vocab.text == "lm":
                raise DialectError("vocab.text=lm is the tokenizer of a Hugging Face backbone: set hf_lm too")
            self.vocab = vocab if vocab is not None else TarVocab.build(config.vocab)
            config.lm.vocab_size = len(self.vocab)
            config.lm.prefix_dim = 0
            self.lm = DecoderLM(config.lm)
        self.grid = None
        if config.image_positions == "2d":
            counts = [self.tatok.num_tokens(k) for k in range(config.tatok.num_scales)]
            self.grid = ImageGrid(counts, self.lm.config.dim, self.vocab)

    def _backbone(
        self, config: TarConfig, vocab: TarVocab | None, lm_folder: Path | None
    ) -> tuple[TarVocab, HFCausalLM]:
        """The vocabulary and LM of `hf_lm` (or of a saved `lm_folder`): tokenizer grown by Tar's
        tokens, table resized to len(vocab), `config.lm` set to the backbone's shape."""
        folder = lm_folder or config.hf_lm
        tokenizer = B.load_tokenizer(folder)
        config.vocab.text, config.vocab.pad_token = "lm", B.pad_token(tokenizer)
        vocab = vocab if vocab is not None else TarVocab.from_tokenizer(config.vocab, tokenizer)
        self.lm_tokenizer = B.extend_tokenizer(tokenizer, vocab)
        lm = HFCausalLM(load_causal_lm(folder, weights=lm_folder is None), config.lm.max_len)
        lm.resize(len(vocab))
        config.lm = lm.config  # the backbone's shape, with the caller's max_len (as DecoderLM shares it)
        return vocab, lm

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def _from_config(cls, config: TarConfig, path: Path) -> Tar:
        lm_folder = None
        if config.hf_lm:  # the backbone is rebuilt from the folder's own copy, not from hf_lm
            lm_folder = path / B.LM_DIR
            if not (lm_folder / "config.json").is_file():
                raise DialectError(f"{path} lacks {B.LM_DIR}/config.json: not a saved Tar on a HF backbone")
        return cls(config, TarVocab.load(path, config.vocab), lm_folder)

    def save_pretrained(self, path, extra_files: dict[str, str] | None = None) -> Path:
        files = self.vocab.files()
        if self.lm_tokenizer is not None:
            files |= B.backbone_files(self.lm.model, self.lm_tokenizer)
        return super().save_pretrained(path, {**files, **(extra_files or {})})

    def save_backbone(self, path: str | Path) -> Path:
        """Write the trained backbone with the grown vocabulary and tokenizer as a folder that
        plain `transformers.AutoModelForCausalLM` / `AutoTokenizer.from_pretrained` load."""
        if self.lm_tokenizer is None:
            raise DialectError("save_backbone needs a Tar on a Hugging Face backbone (hf_lm)")

        def write(tmp: Path) -> None:
            self.lm.model.save_pretrained(tmp)
            self.lm_tokenizer.save_pretrained(tmp)

        return atomic_dir(path, write)

    def train(self, mode: bool = True) -> Tar:
        super().train(mode)
        self.tatok.eval()
        return self

    # ------------------------------------------------------------------ initialisation
    def load_tatok(self, tatok: TATok) -> None:
        """Copy a trained TA-Tok's weights into the frozen tokenizer (configs must match)."""
        self.tatok.load_state_dict(tatok.state_dict())

    @torch.no_grad()
    def init_embeddings(self, mode: str | None = None, text_model: str | None = None) -> None:
        """Set the token-embedding table by `mode` (default: the config's); see the module
        docstring. `text_model`: the local LM folder whose table the text rows come from (MiniLM)."""
        mode = mode or self.config.init
        if mode not in INIT_MODES:
            raise DialectError(f"init must be one of {', '.join(INIT_MODES)}, got {mode!r}")
        if self.config.hf_lm:
            if text_model:
                raise DialectError("text_model is for the built-in LM: a HF backbone keeps its own text rows")
            B.init_new_rows(self.lm, self.vocab, mode, self.tatok.quantizer.codebook)
            return
        emb = self.lm.tok_emb.weight
        table = load_token_embeddings(text_model).weight[self.vocab.source_rows]  # (n_text, 384)
        codes = self.tatok.quantizer.codebook.codes().float()  # (K, D)
        if codes.shape[1] != table.shape[1]:
            raise DialectError(
                f"codebook width {codes.shape[1]} != text embedding width {table.shape[1]}: "
                "text-aligned init needs the TA-Tok codebook built from the same LM's table"
            )
        text, image = _to_width(table, codes, emb.shape[1])
        target_norm = 0.02 * emb.shape[1] ** 0.5
        scale = target_norm / text.norm(dim=1).mean()
        n_text, off = self.vocab.n_text, self.vocab.image_offset
        emb[:n_text] = text * scale
        new = torch.randn(len(self.vocab) - n_text, emb.shape[1]) * 0.02
        if mode == "mean":
            new[:] = emb[:n_text].mean(0)
        elif mode == "text-aligned":
            new[off - n_text :] = image * (target_norm / image.norm(dim=1).mean())
        emb[n_text:] = new.to(emb)

    # ------------------------------------------------------------------ sequences
    @torch.no_grad()
    def encode_images(
        self, images: torch.Tensor, scale: int, anchor: torch.Tensor | None = None, margin: float = 0.0
    ) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> TA-Tok codes (B, n_scale), optionally anchored to `anchor`
        codes (B, n_scale) within `margin` (`TATok.encode_ids`). Batches read from a pretokenized
        folder (`train.pretokenized.PretokenizedTasks`) carry integer ids instead, every scale
        concatenated (B, sum_k n_k): their slice of `scale` is returned, nothing is encoded."""
        if not images.is_floating_point():
            if anchor is not None:
                raise DialectError("anchored codes need images, not stored ids")
            return self.tatok.stored_ids(images, scale)
        if anchor is not None:
            anchor = anchor.to(images.device)
        return self.tatok.encode_ids(images, scale, anchor, margin)

    def batch_sequences(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """A collated batch of task samples -> ids (B, T), loss_mask (B, T) (right-padded)."""
        return pad_batch(*self._sequences(batch), self.vocab.pad_id)

    def _sequences(self, batch: dict) -> tuple[list[list[int]], list[list[int]]]:
        metas = batch["meta"]
        us = self.config.understand_scale
        needs_input = [i for i, m in enumerate(metas) if m["task"] not in ("t2i", *TEXT_ONLY)]
        inputs: dict[int, ImageSpan] = {}
        if needs_input:
            codes = self.encode_images(batch["image"][needs_input], us).cpu()
            inputs = {i: ImageSpan(c, us) for i, c in zip(needs_input, codes, strict=True)}
        outputs: dict[int, ImageSpan] = {}
        margin = self.config.tasks.ti2i_anchor
        for scale in sorted({m["scale"] for m in metas if m["scale"] >= 0}):
            idx = [i for i, m in enumerate(metas) if m["scale"] == scale]
            edits = [i for i in idx if margin > 0 and metas[i]["task"] == "ti2i"]
            plain = [i for i in idx if i not in edits]
            if plain:
                codes = self.encode_images(batch["target"][plain], scale).cpu()
                outputs.update({i: ImageSpan(c, scale) for i, c in zip(plain, codes, strict=True)})
            if edits:  # each edit's target anchored to its source's codes at the output scale
                if scale == us:
                    source = torch.stack([inputs[i].codes for i in edits])
                else:
                    source = self.encode_images(batch["image"][edits], scale)
                codes = self.encode_images(batch["target"][edits], scale, source, margin).cpu()
                outputs.update({i: ImageSpan(c, scale) for i, c in zip(edits, codes, strict=True)})
        seqs, masks = [], []
        for i, meta in enumerate(metas):
            turns = conversation(
                meta, inputs.get(i), outputs.get(i), self.config.image_last, self.config.question_first
            )
            ids, mask = encode_conversation(self.vocab, turns)
            seqs.append(ids)
            masks.append(mask)
        if max(len(s) for s in seqs) > self.config.lm.max_len:
            raise DialectError(
                f"a training sequence has {max(len(s) for s in seqs)} tokens > lm.max_len "
                f"{self.config.lm.max_len}; raise lm.max_len or shorten the texts"
            )
        return seqs, masks

    def training_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """Next-token cross-entropy over the assistant tokens of the batch (one weighted mean over
        all of them, text tokens weighted `config.text_loss_weight`), also split into image-token
        and text-token loss (plain means, for logging). Sequences are sorted by length and
        run as two padded groups, cut where padding is least: two-image tasks (i2i, ti2i) are about
        twice as long as the rest, and one padded batch would spend a third of its compute on padding."""
        seqs, masks = self._sequences(batch)
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        lengths = [len(seqs[i]) for i in order]
        cut = min(range(1, len(order) + 1), key=lambda c: c * lengths[c - 1] + (len(order) - c) * lengths[-1])
        device = self.lm.tok_emb.weight.device
        sums = torch.zeros(3, device=device)  # sum of weighted ce: all, image, text
        counts = torch.zeros(3, device=device)
        for group in (order[:cut], order[cut:]):
            if not group:
                continue
            ids, mask = pad_batch([seqs[i] for i in group], [masks[i] for i in group], self.vocab.pad_id)
            ids, mask = ids.to(device), mask.to(device)
            inputs = ids[:, :-1]
            # the head and the softmax only where a loss is taken (about half the positions: prompts
            # and input images carry none)
            keep = mask[:, 1:] > 0  # row t of the logits predicts ids[t + 1]
            logits = self.lm(inputs, token_bias=self.position_bias(inputs), select=keep).float()  # (M, V)
            target, weight = ids[:, 1:][keep], mask[:, 1:][keep]  # (M,)
            ce = nn.functional.cross_entropy(logits, target, reduction="none")
            is_image = (target >= self.vocab.image_offset).float() * weight
            is_text = weight - is_image
            weighted = is_image + self.config.text_loss_weight * is_text
            for k, w in enumerate((weighted, is_image, is_text)):
                sums[k] = sums[k] + (ce * w).sum()
                counts[k] = counts[k] + w.sum()
        # the mean over every rank's loss tokens: DDP averages the ranks' gradients, so each rank
        # scales its sum by world / (tokens on all ranks); one process: sum / count, as before
        total = all_reduce_sum(counts[0].detach().clone())
        out = {"loss": sums[0] * world_size() / total.clamp_min(1.0)}
        for k, name in ((1, "image_loss"), (2, "text_loss")):
            if counts[k] > 0:
                out[name] = (sums[k] / counts[k]).detach()
        return out

    def position_bias(self, ids: torch.Tensor) -> torch.Tensor | None:
        """The 2-D image positions (B, T, dim) to add to the embeddings of ids (B, T); None for "1d"."""
        return None if self.grid is None else self.grid(ids)

    def _decoding_bias(self, ids: torch.Tensor, num_tokens: int, fill: int) -> torch.Tensor | None:
        """`generate`'s token_bias for the given ids (b, T0) and the num_tokens - 1 tokens fed back
        after them, whose positions are known before their values (`fill` stands in for them)."""
        if self.grid is None:
            return None
        future = ids.new_full((ids.shape[0], num_tokens - 1), fill)
        return self.grid(torch.cat([ids, future], dim=1))

    # ------------------------------------------------------------------ inference
    def image_spans(self, images: torch.Tensor, scale: int | None = None) -> list[ImageSpan]:
        """(B, 3, H, W) in [-1, 1] -> one ImageSpan per image (default: the understanding scale)."""
        scale = self.config.understand_scale if scale is None else scale
        device = self.lm.tok_emb.weight.device
        return [ImageSpan(c, scale) for c in self.encode_images(images.to(device), scale).cpu()]

    def _grouped(self, prompts: list[list[int]]) -> list[tuple[list[int], torch.Tensor]]:
        """Prompts grouped by length (no padding inside the causal LM): [(indices, ids (b, T))]."""
        groups: dict[int, list[int]] = {}
        for i, p in enumerate(prompts):
            groups.setdefault(len(p), []).append(i)
        device = self.lm.tok_emb.weight.device
        return [
            (idx, torch.tensor([prompts[i] for i in idx], dtype=torch.long, device=device))
            for idx in groups.values()
        ]

    @torch.no_grad()
    def generate_text(
        self,
        conversations: list[list],
        max_new_tokens: int = 48,
        sampling: SamplingConfig | None = None,
        generator: torch.Generator | None = None,
        max_batch: int = 256,
    ) -> list[str]:
        """The assistant's text reply to each conversation (greedy by default). Decoding is
        constrained to text tokens and stops at <|end|>; conversations whose prompts have the same
        length decode as one batch of at most `max_batch` rows."""
        sampling = sampling or SamplingConfig(temperature=0.0)
        v = self.vocab
        end = v.special(END)
        allowed = torch.cat([v.reply_ids, torch.tensor([end])])
        prompts = [encode_conversation(v, turns, add_generation_prompt=True)[0] for turns in conversations]
        room = self.config.lm.max_len - max(len(p) for p in prompts) + 1
        if room < 1:
            raise DialectError(f"prompt of {max(len(p) for p in prompts)} tokens leaves no room in max_len")
        replies: list[str] = [""] * len(prompts)
        num = min(max_new_tokens, room)
        for group, group_ids in self._grouped(prompts):
            # prompts of one length decode together, up to max_batch rows at a time: a caller that
            # hands over many questions at once gets few, full batches (no padding in the LM)
            for start in range(0, len(group), max_batch):
                idx, ids = group[start : start + max_batch], group_ids[start : start + max_batch]
                out = self.lm.generate(
                    None, num, sampling, generator=generator, ids=ids, allowed=allowed, stop_id=end,
                    token_bias=self._decoding_bias(ids, num, fill=end),
                )  # fmt: skip
                for i, row in zip(idx, out.tolist(), strict=True):
                    row = row[: row.index(end)] if end in row else row
                    replies[i] = v.decode_text(row)
        return replies

    @torch.no_grad()
    def generate_codes(
        self,
        conversations: list[list],
        scale: int,
        sampling: SamplingConfig | None = None,
        generator: torch.Generator | None = None,
        null: str = "text",
    ) -> torch.Tensor:
        """TA-Tok codes (B, n_scale) of the image the assistant answers each conversation with.
        The reply is forced to start with `<im_start> <S_k>` and constrained to exactly n_scale
        image tokens (the paper's sampling: temperature 1, top-p 0.95, top-k 1200, no guidance).

        `sampling.cfg_scale` != 1: classifier-free guidance inside the LM, against each
        conversation's null twin (`null_conversation`): `null` "text" nulls the user's text
        (text-to-image: guidance on the prompt), "image" the user's images (editing: guidance on
        the input image), "instruction" an edit's text (editing: guidance on the instruction,
        the twin keeping the input image). Only a model trained with that dropout knows what the
        null means (`tasks.t2i_drop` > 0 on text-to-image prompts, `tasks.ti2i_image_drop` /
        `ti2i_text_drop` > 0 on edits)."""
        sampling = sampling or SamplingConfig(temperature=1.0, top_k=1200, top_p=0.95)
        guided = sampling.cfg_scale != 1.0
        trained = self.config.tasks.trained_for(null)  # also rejects an unknown null kind
        if guided and not trained:
            share, what = GUIDANCE_DROPOUT[null]
            raise DialectError(
                f"cfg_scale {sampling.cfg_scale} needs a model trained with {what} dropout "
                f"(model.tasks.{share} > 0); this one never saw the null {what}"
            )
        v = self.vocab
        n = self.tatok.num_tokens(scale)
        head = [v.special(IM_START), v.scale_id(scale)]

        def encode(convs: list[list]) -> list[list[int]]:
            return [encode_conversation(v, turns, add_generation_prompt=True)[0] + head for turns in convs]

        prompts = encode(conversations)
        kind = "text" if null == "instruction" else null  # an edit's text is its instruction
        nulls = encode([null_conversation(t, kind) for t in conversations]) if guided else []
        if max(len(p) for p in prompts) + n - 1 > self.config.lm.max_len:
            raise DialectError(f"prompt + {n} image tokens exceed lm.max_len {self.config.lm.max_len}")
        codes = torch.empty(len(prompts), n, dtype=torch.long)
        for idx, ids in self._grouped(prompts):
            null_ids = null_bias = None
            if guided:
                null_ids = torch.tensor([nulls[i] for i in idx], dtype=torch.long, device=ids.device)
                null_bias = self._decoding_bias(null_ids, n, fill=v.image_offset)
            out = self.lm.generate(
                None, n, sampling, generator=generator, ids=ids, allowed=v.image_range,
                token_bias=self._decoding_bias(ids, n, fill=v.image_offset),
                uncond_ids=null_ids, uncond_token_bias=null_bias,
            )  # fmt: skip
            codes[idx] = v.codes(out).cpu()
        return codes


def _to_width(text: torch.Tensor, codes: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One shared linear map of text rows (n, D) and codebook rows (K, D) to `width` columns: the top
    principal directions of all rows (width < D), identity (=), or zero-padding (>)."""
    D = text.shape[1]
    if width == D:
        return text, codes
    if width > D:
        pad = lambda x: torch.cat([x, x.new_zeros(x.shape[0], width - D)], dim=1)  # noqa: E731
        return pad(text), pad(codes)
    rows = torch.cat([text, codes])  # both sets, so there are enough directions when n < width
    mean = rows.mean(0, keepdim=True)
    _, _, v = torch.linalg.svd(rows - mean, full_matrices=False)
    basis = v[:width].T  # (D, width)
    return (text - mean) @ basis, (codes - mean) @ basis
