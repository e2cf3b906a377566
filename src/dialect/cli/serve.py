"""`dialect serve [--model PATH] [--host 127.0.0.1] [--port 7860] [--compile] [--ahead-of-time]`:
the web demo.

Loads the model (default: the one shipped inside the package) and serves the four-panel Gradio
app of `dialect.web.app` until Ctrl-C. Gradio is optional and imported only here, so `dialect`
works without it; a missing Gradio is a DialectError naming the install command.
"""

from __future__ import annotations

import argparse

from dialect.cli.compiled import add_compile_flags, compile_as_asked
from dialect.core.errors import DialectError

INSTALL_HINT = 'the web demo needs Gradio: pip install "vision-dialect[demo]"'


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="serve the web demo (chat, generate, edit, Dialect view)")
    p.add_argument("--model", default=None, help="Dialect model folder (default: the shipped model)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    add_compile_flags(p, "the first request of each batch shape compiles (seconds), later ones decode faster")
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

    demo = app.build_demo(compile_as_asked(Dialect.from_pretrained(args.model), args))
    print(f"dialect serve: http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
    app.launch(demo, host=args.host, port=args.port)
    return 0
