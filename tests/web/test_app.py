"""The Gradio app and `dialect serve` without a browser: queueing, privacy settings, error display
and the CLI's behaviour with and without Gradio."""

import os
import sys

import pytest

from dialect.cli import serve
from dialect.cli.main import main
from dialect.core.errors import DialectError

gr = pytest.importorskip("gradio")

from dialect.web import app  # noqa: E402  (needs gradio)


@pytest.fixture(scope="module")
def demo(shipped):
    return app.build_demo(shipped)


def test_every_model_call_waits_in_one_queue(demo):
    fns = list(demo.fns.values())
    model_calls = [f for f in fns if f.concurrency_id == "model"]
    names = {getattr(f.fn, "__name__", "") for f in model_calls}
    assert {"ask", "generate", "edit", "dialect_view"} <= names
    assert all(f.concurrency_limit == 1 for f in model_calls)
    assert demo._queue.max_size == 64


def test_nothing_is_sent_out(demo):
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False" and demo.analytics_enabled is False


def test_errors_become_readable_toasts_and_file_names_are_escaped():
    @app._ui
    def fails(name):
        raise DialectError(f"cannot use {name}: not an image file")

    with pytest.raises(gr.Error) as err:
        fails("<b>x</b>.txt")
    assert err.value.message == "cannot use &lt;b&gt;x&lt;/b&gt;.txt: not an image file"
    assert app._plain("my_file*.txt: <i>") == "my\\_file\\*.txt: &lt;i&gt;"


def test_serve_without_gradio_names_the_install_command(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` now raises ImportError
    monkeypatch.delitem(sys.modules, "dialect.web.app")
    monkeypatch.delattr(
        "dialect.web.app"
    )  # the package's attribute would satisfy `from dialect.web import app`
    with pytest.raises(DialectError, match=r'pip install "vision-dialect\[demo\]"'):
        serve.load_app()
    assert main(["serve"]) == 2
    assert 'pip install "vision-dialect[demo]"' in capsys.readouterr().err


def test_serve_checks_its_port(capsys):
    assert main(["serve", "--port", "70000"]) == 2
    assert "--port must be in 1..65535" in capsys.readouterr().err


def test_serve_compile_serves_a_model_with_compiled_decoding(monkeypatch):
    served = {}
    monkeypatch.setattr(app, "build_demo", lambda model: served.setdefault("model", model))
    monkeypatch.setattr(app, "launch", lambda demo, host, port: served.update(port=port))
    assert main(["serve", "--compile", "--port", "7861"]) == 0
    assert served["port"] == 7861 and served["model"].tar.lm._step is not None
    assert served["model"].tar.lm._aot is None
    served["model"].compile_decoding(False)
    served.clear()
    assert main(["serve", "--ahead-of-time"]) == 0  # implies --compile
    assert served["model"].tar.lm._step is not None and served["model"].tar.lm._aot is not None
    served["model"].compile_decoding(False)
