import torch
import torch.nn.functional as F

from dialect.nn.linear import FEW_ROWS, ROWDOT_ROWS, Linear, prepare_transposes, set_half_inference


def test_inference_fast_path_equals_nn_linear_and_follows_weight_updates():
    torch.manual_seed(0)
    layer = Linear(64, 96)
    x = torch.randn(1, 3, 64)
    with torch.inference_mode():
        fast = layer(x)
        assert layer._wt is not None  # the transposed copy was used
    torch.testing.assert_close(fast, F.linear(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-6)
    # an optimizer step changes the weight in place: the next inference call must see it
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer(torch.randn(4, 64)).square().sum().backward()
    opt.step()
    with torch.no_grad():
        after = layer(x)
    torch.testing.assert_close(after, F.linear(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(after, fast)
    # load_state_dict copies in place too
    other = Linear(64, 96)
    layer.load_state_dict(other.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(layer(x), other(x))


def test_training_and_many_rows_take_the_plain_path():
    layer = Linear(32, 16, bias=False)
    out = layer(torch.randn(2, 32))  # grad enabled: nn.Linear's path, differentiable
    assert out.requires_grad and layer._wt is None
    with torch.no_grad():
        layer(torch.randn(FEW_ROWS + 1, 32))
    assert layer._wt is None
    assert set(layer.state_dict()) == {"weight"}


def test_fast_path_splits_the_weight_into_one_slab_per_thread():
    """With S intra-op threads the copy is S column slabs (one batched product, a slab per thread);
    the result is the same, and a thread count that does not divide the width keeps one slab."""
    torch.manual_seed(0)
    before = torch.get_num_threads()
    try:
        for threads, out_features, slabs in [(2, 96, 2), (4, 96, 4), (2, 95, 1)]:
            torch.set_num_threads(threads)
            layer = Linear(64, out_features)
            for shape in [(1, 64), (2, 1, 64), (8, 64)]:
                x = torch.randn(*shape)
                with torch.inference_mode():
                    got = layer(x)
                assert layer._wt.shape == (slabs, 64, out_features // slabs)
                torch.testing.assert_close(got, F.linear(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-6)
    finally:
        torch.set_num_threads(before)


def test_the_compiled_step_multiplies_few_rows_as_a_row_dot_loop_and_more_through_the_blas():
    """Inside torch.compile, one or two rows multiply as inductor's own row-dot loop over the
    (out, in) weight (no BLAS call at all); three to FEW_ROWS rows take the slabs as an external
    `baddbmm` (inductor lowers a one-row `bmm` to a slow loop). Both equal nn.Linear."""
    torch.manual_seed(0)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        layer = Linear(64, 96)
        prepare_transposes(layer)
        assert layer._wt.shape == (2, 64, 48)
        step = torch.compile(layer, fullgraph=True, dynamic=False)
        for rows in (1, 2, 3, FEW_ROWS):
            x = torch.randn(rows, 64)
            with torch.inference_mode(), torch.profiler.profile() as prof:
                got = step(x)
            ops = {e.key for e in prof.key_averages()}
            blas = {"aten::baddbmm", "aten::bmm", "aten::mm", "aten::addmm", "aten::linear"}
            if rows <= ROWDOT_ROWS:
                assert not ops & blas, ops
            else:
                assert "aten::baddbmm" in ops and "aten::bmm" not in ops, ops
            torch.testing.assert_close(got, F.linear(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-5)
    finally:
        torch.set_num_threads(before)


def test_half_inference_multiplies_fp16_for_one_row_and_bf16_for_more():
    """Half inference: one row runs on the fp16 copy, more rows (a prefill) on the bf16 copy; the
    output stays in the input's dtype, within half-precision rounding of nn.Linear; training and
    the state dict are untouched, and the copies follow weight updates."""
    torch.manual_seed(0)
    layer = Linear(64, 96)
    set_half_inference(layer)
    for rows, dtype, tol in [(1, torch.float16, 2e-3), (5, torch.bfloat16, 2e-2), (40, torch.bfloat16, 2e-2)]:
        x = torch.randn(rows, 64)
        with torch.inference_mode(), torch.profiler.profile() as prof:
            got = layer(x)
        ref = F.linear(x, layer.weight, layer.bias)
        assert got.dtype == torch.float32 and layer._wt is None  # no fp32 slabs under half inference
        assert (got - ref).norm() / ref.norm() < tol
        # the product ran in the expected half dtype: its rounding matches that dtype's copy exactly
        want = F.linear(x.to(dtype), layer.weight.detach().to(dtype)).float() + layer.bias
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        assert any(e.key in ("aten::linear", "aten::mm", "aten::addmm") for e in prof.key_averages())
    # training: nn.Linear's differentiable fp32 path; the copies are dropped
    out = layer(torch.randn(2, 64))
    assert out.requires_grad and layer._halves == {}
    assert set(layer.state_dict()) == {"weight", "bias"}
    with torch.no_grad():
        layer.weight.mul_(2)
        x = torch.randn(1, 64)
        ref = F.linear(x, layer.weight, layer.bias)
        assert (layer(x) - ref).norm() / ref.norm() < 2e-3
    set_half_inference(layer, False)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), ref, rtol=1e-5, atol=1e-6)
    assert layer._halves == {}


def test_half_inference_in_a_compiled_step_uses_the_prepared_copies():
    torch.manual_seed(0)
    layer = Linear(64, 96, bias=False)
    set_half_inference(layer)
    prepare_transposes(layer)
    assert set(layer._halves) == {torch.float16, torch.bfloat16} and layer._wt is None
    step = torch.compile(layer, fullgraph=True, dynamic=False)
    for rows in (1, 2, 3):
        x = torch.randn(rows, 64)
        with torch.inference_mode():
            compiled = step(x)
        ref = F.linear(x, layer.weight)
        assert (compiled - ref).norm() / ref.norm() < 2e-2  # half-precision rounding
        if rows <= ROWDOT_ROWS:  # the row-dot loop: the fp16 copy times the fp32 rows, exactly
            want = x @ layer.weight.detach().to(torch.float16).float().t()
            torch.testing.assert_close(compiled, want, rtol=1e-5, atol=1e-5)


def test_a_layer_built_under_inference_mode_takes_the_fast_paths():
    """Inference tensors keep no version counter: a layer created (or deep-copied) under
    `torch.inference_mode` still builds its decoding and half copies and matches nn.Linear."""
    torch.manual_seed(0)
    with torch.inference_mode():
        layer = Linear(64, 96)
        x = torch.randn(1, 64)
        torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-6)
        assert layer._wt is not None
        set_half_inference(layer)
        prepare_transposes(layer)
        assert set(layer._halves) == {torch.float16, torch.bfloat16}
