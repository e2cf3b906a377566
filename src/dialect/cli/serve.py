"""`dialect serve [--model PATH] [--host 127.0.0.1] [--port 7860] [--compile]`: the web demo.

Loads the model (default: the one shipped inside the package) and serves the four-panel Gradio
app of `dialect.web.app` until Ctrl-C. Gradio is optional and imported only here, so `dialect`
works without it; a missing Gradio is a DialectError naming the install command.
"""

from __future__ import annotations

import argparse

from dialect.core.errors import DialectError

INSTALL_HINT = 'the web demo needs Gradio: pip install "vision-dialect[demo]"'


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="serve the web demo (chat, generate, edit, Dialect view)")
    p.add_argument("--model", default=None, help="Dialect model folder (default: the shipped model)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument(
        "--compile", action="store_true",
        help="decode through compiled one-token steps (Dialect.compile_decoding): the first request "
        "of each batch shape compiles (seconds), later ones decode faster",
    )  # fmt: skip
    p.add_argument(
        "--ahead-of-time", action="store_true",
        help="--compile, with the steps built ahead of time by AOTInductor: a C++ build per LM and "
        "batch size (~10-30 s) serves every length, and steps run without Python around the kernels",
    )  # fmt: skip
    p.set_defaults(func=run)


def load_app():
    """The `dialect.web.app` module; without Gradio -> DialectError with the install command."""
    try:
        from dialect.web import app
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] == "gradio":
            raise DialectError(INSTALL_HINT) from None
        raise
    return app


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise DialectError(f"--port must be in 1..65535, got {args.port}")
    app = load_app()  # before the model: a missing Gradio should not cost a model load
    from dialect.unified.pipeline import Dialect

    demo = app.build_demo(
        Dialect.from_pretrained(args.model).compile_decoding(
            args.compile or args.ahead_of_time, ahead_of_time=args.ahead_of_time
        )
    )
    print(f"dialect serve: http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
    app.launch(demo, host=args.host, port=args.port)
    return 0
