"""The Gradio app of `dialect serve`: four panels over one `Dialect` pipeline.

    demo = build_demo(Dialect.from_pretrained())
    launch(demo, host="127.0.0.1", port=7860)

Panels: Chat (image + questions / captions, multi-turn), Generate (prompt -> gallery with token
counts and times), Edit (image + instruction -> edited image beside the original) and Dialect view
(an image's token grid with each code's source word, and its reconstruction through every
de-tokenizer). The work itself is in `dialect.web.actions`; this module only lays out widgets.

Errors: bad input raises DialectError in the actions; uploads show it in the panel (and a toast)
and clear the image, other actions show it as an error toast. Either way the request ends and the
server keeps serving. Every model call shares one queue slot (`concurrency_id="model"`), so
concurrent requests wait their turn instead of running the model in parallel threads.
Nothing leaves the machine: analytics and the version check are off, there is no share link, and
the theme uses only bundled fonts.
"""

from __future__ import annotations

import functools
import html
import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio reads it: no telemetry, no version check

import gradio as gr  # noqa: E402

from dialect.core.errors import DialectError  # noqa: E402
from dialect.data.user_image import MAX_PIXELS  # noqa: E402
from dialect.detok import DECODERS  # noqa: E402
from dialect.unified.pipeline import MAX_IMAGES, MAX_PROMPT_CHARS, Dialect  # noqa: E402
from dialect.web.actions import CAPTION_REQUEST, DemoActions, LoadedImage, Sampling  # noqa: E402

MODEL_QUEUE = {"concurrency_limit": 1, "concurrency_id": "model"}  # one model call at a time, in order
MAX_FILE_SIZE = "64mb"  # a 4096x4096 PNG (the pixel limit) fits; the pixel check is the real limit
UPLOAD_LABEL = f"Image file (PNG, JPEG, WebP, BMP, GIF ...; at most {MAX_PIXELS:,} pixels)"
PROMPTS = [
    "a red circle",
    "a big blue square on the left",
    "a green triangle above a yellow circle",
    "two purple squares",
]
INSTRUCTIONS = ["make the circle blue", "remove the square", "make the triangle big"]
PROGRESS = gr.Progress()  # a handler's default: Gradio finds it in the signature and drives a copy per call


def _plain(text: str) -> str:
    """A message that may hold a user's file name, safe to show as HTML or Markdown verbatim."""
    text = html.escape(text, quote=False)
    return "".join("\\" + ch if ch in "\\`*_[]" else ch for ch in text)


def _ui(fn):
    """Show DialectError's sentence as an error toast instead of Gradio's generic 'Error'."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DialectError as exc:
            raise gr.Error(html.escape(str(exc), quote=False), title="Cannot do that") from None

    return wrapper


def _image_source(prefix: str, actions: DemoActions):
    """Upload widget + 'draw a ShapeWorld scene' + a preview of what the model reads.
    -> (state holding a LoadedImage or None, the preview image)."""
    state = gr.State(None)
    upload = gr.File(label=UPLOAD_LABEL, type="filepath", elem_id=f"{prefix}-upload", height=150)
    with gr.Row(equal_height=True):
        index = gr.Number(
            value=0, precision=0, label="ShapeWorld scene #", elem_id=f"{prefix}-scene", scale=1
        )
        draw = gr.Button("Draw a ShapeWorld scene", elem_id=f"{prefix}-draw", scale=2)
    preview = gr.Image(
        label="Input, as the model reads it", interactive=False, elem_id=f"{prefix}-preview",
        height=256, format="png",
    )  # fmt: skip
    note = gr.Markdown(elem_id=f"{prefix}-note")

    def loaded(image: LoadedImage):
        return image, image.preview, image.note

    def from_upload(path):
        # the file widget is emptied every time (the preview shows what was read), so it is
        # always ready for the next file
        if path is None:
            return None, None, "", None
        try:
            return *loaded(actions.load_upload(path)), None
        except DialectError as exc:
            # the message stays in the panel (a toast fades) and any earlier image is dropped, so
            # the next question cannot silently go to a picture the user meant to replace
            gr.Warning(html.escape(str(exc), quote=False), title="Cannot use this file")
            return None, None, f"**Error:** {_plain(str(exc))}", None

    upload.upload(from_upload, upload, [state, preview, note, upload])
    draw.click(_ui(lambda k: loaded(actions.shapeworld(k))), index, [state, preview, note])
    return state, preview


def _sampling_controls(prefix: str, actions: DemoActions) -> list:
    """[scale, decoder, seed, temperature, top-k, top-p, guidance, LM guidance]: the arguments of
    `_sampling`."""
    shipped = ", ".join(actions.d.decoders)
    defaults = ", ".join(f"{k} {v:g}" for k, v in actions.guidance_defaults().items())
    with gr.Row():
        scale = gr.Radio(
            actions.scales, value=0, label="TA-Tok scale",
            info=", ".join(f"{s}: {actions.tokens_at(s)[0]} tokens" for s in actions.scales),
            elem_id=f"{prefix}-scale",
        )  # fmt: skip
        decoder = gr.Radio(
            list(DECODERS), value=actions.d.default_decoder, label="De-tokenizer",
            info=f"this model ships: {shipped}",
            elem_id=f"{prefix}-decoder",
        )  # fmt: skip
        seed = gr.Number(value=0, precision=0, label="Seed (blank = random)", elem_id=f"{prefix}-seed")
    with gr.Accordion("Sampling", open=False), gr.Row():
        temperature = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="LM temperature (0 = greedy)")
        top_k = gr.Slider(0, 4096, value=1200, step=1, label="LM top-k (0 = off)")
        top_p = gr.Slider(0.05, 1.0, value=0.95, step=0.01, label="LM top-p (1 = off)")
        guidance = gr.Number(value=None, label=f"De-tokenizer guidance (blank = its default: {defaults})")
        tasks = actions.d.tar.config.tasks
        trained = tasks.trained_for("text" if prefix == "gen" else tasks.edit_null())
        lm_guidance = gr.Slider(
            1.0, 8.0, value=1.0, step=0.5, label="LM guidance (1 = off, as in the paper)",
            info="classifier-free guidance inside the LM; "
            + ("this model was trained for it" if trained else "this model was not trained for it: keep 1"),
            interactive=trained, elem_id=f"{prefix}-lm-guidance",
        )  # fmt: skip
    return [scale, decoder, seed, temperature, top_k, top_p, guidance, lm_guidance]


def _sampling(scale, decoder, seed, temperature, top_k, top_p, guidance, lm_guidance) -> Sampling:
    """The values of `_sampling_controls` -> Sampling."""
    return Sampling(
        scale=int(scale), decoder=decoder, seed=None if seed is None else int(seed),
        temperature=temperature, top_k=None if top_k is None else int(top_k), top_p=top_p,
        guidance=guidance, lm_guidance=None if lm_guidance in (None, 1.0) else lm_guidance,
    )  # fmt: skip


def _chat_panel(actions: DemoActions) -> None:
    with gr.Row():
        with gr.Column(scale=2):
            image, preview = _image_source("chat", actions)
        with gr.Column(scale=3):
            bot = gr.Chatbot(label="Chat about the image", elem_id="chat-bot", height=600)
            message = gr.Textbox(
                label="Your question", placeholder="What color is the circle?", elem_id="chat-msg",
                max_lines=3,
            )  # fmt: skip
            with gr.Row():
                send = gr.Button("Ask", variant="primary", elem_id="chat-send")
                caption = gr.Button("Caption the image", elem_id="chat-caption")
                clear = gr.Button("Clear chat", elem_id="chat-clear")
            use_history = gr.Checkbox(
                value=False, label="Give the model the earlier turns", elem_id="chat-history",
                info="The shipped model was trained on single-turn chats and answers more accurately "
                "with this off; the history is shown either way.",
            )  # fmt: skip
    exchanges = gr.State([])

    def messages(pairs):
        return [
            m for u, a in pairs for m in ({"role": "user", "content": u}, {"role": "assistant", "content": a})
        ]

    @_ui
    def ask(img, pairs, text, with_history):
        reply = actions.reply(img, pairs, text, with_history)
        pairs = [*pairs, (text.strip(), reply)]
        return messages(pairs), pairs, ""

    send.click(ask, [image, exchanges, message, use_history], [bot, exchanges, message], **MODEL_QUEUE)
    message.submit(ask, [image, exchanges, message, use_history], [bot, exchanges, message], **MODEL_QUEUE)
    caption.click(
        lambda img, pairs, h: ask(img, pairs, CAPTION_REQUEST, h)[:2], [image, exchanges, use_history],
        [bot, exchanges], **MODEL_QUEUE,
    )  # fmt: skip
    clear.click(lambda: ([], []), None, [bot, exchanges])
    preview.change(lambda: ([], []), None, [bot, exchanges])  # a new image starts a new chat


def _generate_panel(actions: DemoActions) -> None:
    with gr.Row():
        prompt = gr.Textbox(
            label=f"Prompt (at most {MAX_PROMPT_CHARS} characters)", value=PROMPTS[0], elem_id="gen-prompt",
            scale=4,
        )  # fmt: skip
        n = gr.Number(value=4, precision=0, label=f"Images (1-{MAX_IMAGES})", elem_id="gen-n", scale=1)
    gr.Examples(PROMPTS, prompt, label="Prompts in the training world")
    controls = _sampling_controls("gen", actions)
    go = gr.Button("Generate", variant="primary", elem_id="gen-go")
    summary = gr.Markdown(elem_id="gen-summary")
    gallery = gr.Gallery(
        label="Generated", columns=4, height=320, format="png", object_fit="contain", elem_id="gen-gallery"
    )

    @_ui
    def generate(text, count, *controls, progress=PROGRESS):
        sampling = _sampling(*controls)
        return actions.generate(text, count, sampling, lambda f, d: progress(f, desc=d))

    go.click(generate, [prompt, n, *controls], [gallery, summary], **MODEL_QUEUE)


def _edit_panel(actions: DemoActions) -> None:
    with gr.Row():
        with gr.Column():
            image, _ = _image_source("edit", actions)
        with gr.Column():
            instruction = gr.Textbox(label="Instruction", value=INSTRUCTIONS[0], elem_id="edit-instruction")
            gr.Examples(INSTRUCTIONS, instruction, label="Instructions in the training world")
            go = gr.Button("Edit", variant="primary", elem_id="edit-go")
            result = gr.Image(
                label="Edited", interactive=False, height=256, format="png", elem_id="edit-result"
            )
            summary = gr.Markdown(elem_id="edit-summary")
    controls = _sampling_controls("edit", actions)

    @_ui
    def edit(img, text, *controls):
        sampling = _sampling(*controls)
        return actions.edit(img, text, sampling)

    go.click(edit, [image, instruction, *controls], [result, summary], **MODEL_QUEUE)


def _dialect_panel(actions: DemoActions) -> None:
    with gr.Row():
        with gr.Column(scale=2):
            image, _ = _image_source("view", actions)
            scale = gr.Radio(
                actions.scales, value=0, label="TA-Tok scale", elem_id="view-scale",
                info=", ".join(f"{s}: {actions.tokens_at(s)[0]} tokens" for s in actions.scales),
            )  # fmt: skip
            go = gr.Button("Show its tokens", variant="primary", elem_id="view-go")
            summary = gr.Markdown(elem_id="view-summary")
            recons = gr.Gallery(
                label="Reconstructions from these tokens", columns=2, height=260, format="png",
                object_fit="contain", elem_id="view-recons",
            )  # fmt: skip
        with gr.Column(scale=3):
            overlay = gr.Image(
                label="The image as words: each cell is one TA-Tok code, named by its source word",
                interactive=False, format="png", elem_id="view-overlay", height=512,
            )  # fmt: skip
            words = gr.Code(
                label="Its tokens as the LM spells them, then their words row by row", language=None,
                interactive=False, lines=12, max_lines=14, show_line_numbers=False, elem_id="view-words",
            )  # fmt: skip

    go.click(_ui(actions.dialect_view), [image, scale], [overlay, recons, words, summary], **MODEL_QUEUE)


def build_demo(pipeline: Dialect) -> gr.Blocks:
    """The four-panel app over `pipeline` (not launched; see `launch`)."""
    actions = DemoActions(pipeline)
    with gr.Blocks(title="Vision as a dialect", analytics_enabled=False) as demo:
        gr.Markdown(
            "# Vision as a dialect\nOne language model reads and writes images as words: every image "
            f"token is a code named after a word.\n\n{actions.describe()} {actions.scores()}"
        )
        with gr.Tabs():
            with gr.Tab("Chat", id="chat", elem_id="tab-chat"):
                _chat_panel(actions)
            with gr.Tab("Generate", id="generate", elem_id="tab-generate"):
                _generate_panel(actions)
            with gr.Tab("Edit", id="edit", elem_id="tab-edit"):
                _edit_panel(actions)
            with gr.Tab("Dialect view", id="dialect", elem_id="tab-dialect"):
                _dialect_panel(actions)
    # requests beyond the one running wait in this queue (the UI shows their position)
    demo.queue(default_concurrency_limit=1, max_size=64)
    return demo


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, block: bool = True) -> gr.Blocks:
    """Serve `demo` on host:port (no share link); `block=False` returns once it is up."""
    demo.launch(
        server_name=host, server_port=port, share=False, max_file_size=MAX_FILE_SIZE,
        prevent_thread_lock=not block, show_error=False, theme=gr.themes.Default(),
    )  # fmt: skip
    return demo
