"""The model registry, the CIFAR ResNet options and user models named by import path."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sharpscope.errors import ModelSpecError, SharpscopeError
from sharpscope.problem.models import (
    MODELS,
    ModelSpec,
    build_model,
    count_parameters,
    register_model,
)

SHAPES = [((1, 8, 8), "digits-shape"), ((3, 32, 32), "cifar-shape")]


# the image classifiers; the registry's token model ``gpt`` takes (context,) windows of
# token ids and is tested in test_gpt.py and test_text_wiring.py
IMAGE_MODELS = sorted(m for m in MODELS if m != "gpt")


@pytest.mark.parametrize("shape", [s for s, _ in SHAPES], ids=[i for _, i in SHAPES])
@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_every_registry_model_builds_and_runs(name, shape):
    torch.manual_seed(0)
    net = build_model(name, input_shape=shape, num_classes=10).eval()
    out = net(torch.randn(2, *shape))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert count_parameters(net) > 0


def test_resnet20_on_cifar_has_the_anchor_parameter_count():
    net = build_model("resnet20", input_shape=(3, 32, 32), num_classes=10)
    assert count_parameters(net) == 272_474
    assert sum(p.numel() for p in net.parameters()) == 272_474


@pytest.mark.parametrize(("name", "expected"), [("resnet32", 466_906), ("resnet56", 855_770)])
def test_deeper_cifar_resnets_parameter_counts(name, expected):
    # 6n+2 layers: each extra block per stage adds its two 3x3 convs and BatchNorms
    assert count_parameters(build_model(name, input_shape=(3, 32, 32), num_classes=10)) == expected


@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet20", "vgg11"])
def test_batchnorm_false_leaves_no_batchnorm(name):
    kw = {} if name in ("resnet20", "vgg11") else {"batchnorm": True}
    with_bn = build_model(name, input_shape=(3, 32, 32), num_classes=10, **kw)
    assert any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in with_bn.modules())
    net = build_model(name, input_shape=(3, 32, 32), num_classes=10, batchnorm=False)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    assert not any(b for b in net.buffers())


def test_resnet_skip_false_removes_the_shortcuts():
    torch.manual_seed(0)
    skip = build_model("resnet20", input_shape=(3, 32, 32), num_classes=10).eval()
    plain = build_model("resnet20", input_shape=(3, 32, 32), num_classes=10, skip=False).eval()
    assert any("shortcut" in n for n, _ in skip.named_parameters())
    assert not any("shortcut" in n for n, _ in plain.named_parameters())
    assert not any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) for m in plain.modules())
    # same weights everywhere they exist: only the missing shortcuts change the output
    missing = plain.load_state_dict(skip.state_dict(), strict=False)
    assert not missing.missing_keys and all("shortcut" in k for k in missing.unexpected_keys)
    x = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(skip(x), plain(x))
    for block in skip.layers:
        block.skip = False  # the same forward without the identity/projection path
    torch.testing.assert_close(skip(x), plain(x))


def test_resnet_depth_must_be_6n_plus_2():
    from sharpscope.problem.models import CifarResNet

    with pytest.raises(ModelSpecError, match="6n\\+2.*got 21"):
        CifarResNet((3, 32, 32), 10, depth=21)


def test_model_options_change_the_architecture():
    net = build_model("mlp", input_shape=(1, 8, 8), num_classes=3, hidden=[5], activation="tanh")
    assert [m.out_features for m in net.modules() if isinstance(m, nn.Linear)] == [5, 3]
    assert any(isinstance(m, nn.Tanh) for m in net.modules())
    net = build_model("resnet20", input_shape=(3, 32, 32), num_classes=10, width=4)
    assert net.fc.in_features == 16
    net = build_model("vgg11", input_shape=(1, 8, 8), num_classes=10, width_multiplier=0.125)
    assert net.classifier.in_features == 64


def test_modelspec_round_trip_and_kwargs_merge():
    spec = ModelSpec("mlp", {"hidden": [4]})
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    net = build_model(spec, input_shape=(1, 8, 8), num_classes=10, activation="gelu")
    assert any(isinstance(m, nn.GELU) for m in net.modules())


def test_register_model_adds_a_name():
    register_model(
        "tiny_linear",
        lambda input_shape, num_classes: nn.Sequential(nn.Flatten(), nn.Linear(64, num_classes)),
    )
    try:
        assert build_model("tiny_linear", input_shape=(1, 8, 8), num_classes=4)(
            torch.zeros(1, 1, 8, 8)
        ).shape == (1, 4)
    finally:
        MODELS.pop("tiny_linear")


# --------------------------------------------------------------------------- user models by import path


def test_user_model_by_import_path_gets_shape_classes_and_kwargs():
    net = build_model("_user_models:make_net", input_shape=(2, 3, 3), num_classes=4, width=5)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert (linears[0].in_features, linears[0].out_features, linears[1].out_features) == (18, 5, 4)


def test_user_factory_without_shape_arguments_and_with_var_kwargs():
    net = build_model("_user_models:make_fixed", input_shape=(1, 8, 8), num_classes=10, hidden=3)
    assert net[1].out_features == 3
    net = build_model("_user_models:make_any", input_shape=(1, 2, 2), num_classes=7, width=2)
    assert net(torch.zeros(1, 1, 2, 2)).shape == (1, 7)


def test_user_model_via_module_attribute_path():
    net = build_model(
        "torch.nn:Linear", input_shape=(4,), num_classes=2, in_features=4, out_features=2
    )
    assert isinstance(net, nn.Linear)


MODEL_ERRORS = [
    ("unknown name", "resnet18", {}, "unknown model 'resnet18': choose one of"),
    (
        "unknown kwarg",
        "mlp",
        {"depth": 3},
        "model 'mlp' does not take depth; it takes activation, batchnorm, dropout, hidden",
    ),
    (
        "resnet unknown kwarg",
        "resnet20",
        {"hidden": [3]},
        "does not take hidden; it takes batchnorm, skip, width",
    ),
    ("bad kwarg value", "mlp", {"hidden": "abc"}, "model 'mlp' rejected its arguments"),
    ("unknown activation", "cnn", {"activation": "swishy"}, "unknown activation 'swishy'"),
    ("missing module", "no_such_pkg.mod:fn", {}, "cannot import module 'no_such_pkg.mod'"),
    ("missing attr", "_user_models:nope", {}, "module '_user_models' has no attribute 'nope'"),
    ("empty module", ":make_net", {}, "must look like 'package.module:function'"),
    ("empty attr", "_user_models:", {}, "must look like 'package.module:function'"),
    (
        "not callable",
        "_user_models:NOT_CALLABLE",
        {},
        "'_user_models:NOT_CALLABLE' is not callable",
    ),
    ("not a module", "_user_models:not_a_module", {}, "returned str, not a torch.nn.Module"),
    ("factory raises", "_user_models:broken", {}, "failed to build with"),
    ("user unknown kwarg", "_user_models:make_fixed", {"depth": 2}, "rejected its arguments"),
]


@pytest.mark.parametrize(
    ("spec", "kwargs", "message"), [c[1:] for c in MODEL_ERRORS], ids=[c[0] for c in MODEL_ERRORS]
)
def test_model_spec_errors(spec, kwargs, message):
    with pytest.raises(ModelSpecError) as info:
        build_model(spec, input_shape=(1, 8, 8), num_classes=10, **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, SharpscopeError)


@pytest.mark.parametrize("name", ["cnn", "resnet20", "vgg11"])
def test_image_models_refuse_flat_inputs(name):
    with pytest.raises(ModelSpecError, match="needs image inputs .* shape \\[64\\]; use 'mlp'"):
        build_model(name, input_shape=(64,), num_classes=10)
