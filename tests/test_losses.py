import math

import pytest
import torch

from dskd.losses import distillation_map, distillation_map_reference, dskd_loss, normalize_features, pyramid_loss


def test_eq6_against_a_hand_computation():
    # one pixel, 2 channels: a = (3, 4), b = (1, 0)
    a = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)
    b = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)
    # unit vectors (0.6, 0.8) and (1, 0): l2 = 0.5 * (0.4^2 + 0.8^2) = 0.4, cos = 0.6 -> 1 - cos = 0.4
    lam = 0.1
    assert distillation_map(a, b, lam).item() == pytest.approx(lam * 0.4 + 0.4)
    # Eq. 3 as printed: a / ||a||^2 = (0.12, 0.16), b stays (1, 0); l2 = 0.5 * (0.88^2 + 0.16^2) = 0.4
    assert distillation_map(a, b, lam, "eq3").item() == pytest.approx(lam * 0.5 * (0.88**2 + 0.16**2) + 0.4)


def test_unit_vectors_turn_eq6_into_a_rescaled_cosine():
    torch.manual_seed(0)
    a, b = torch.randn(2, 16, 5, 7), torch.randn(2, 16, 5, 7)
    ua, ub = normalize_features(a), normalize_features(b)
    half_l2 = 0.5 * (ua - ub).pow(2).sum(1)
    one_minus_cos = 1 - torch.nn.functional.cosine_similarity(a, b, dim=1)
    torch.testing.assert_close(half_l2, one_minus_cos)  # 0.5 ||a - b||^2 = 1 - cos
    for lam in (0.0, 0.1, 1.0, 10.0):
        torch.testing.assert_close(distillation_map(a, b, lam), (1 + lam) * one_minus_cos)
    # the printed Eq. 3 breaks the identity
    assert not torch.allclose(distillation_map(a, b, 1.0, "eq3"), 2 * one_minus_cos)


@pytest.mark.parametrize("normalization", ["unit", "eq3"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_reduced_form_equals_eq6_as_printed_in_values_and_gradients(normalization, channels_last):
    # distillation_map computes Eq. (6) from three reductions; it must equal the literal form, zero
    # feature vectors (ReLU maps have them) and the gradients that train the students included
    g = torch.Generator().manual_seed(1)
    f_t = torch.relu(torch.randn(3, 32, 6, 5, generator=g))
    f_s = torch.randn(3, 32, 6, 5, generator=g) * 3
    f_t[0, :, 0, 0] = 0.0
    f_s[1, :, 2, 3] = 0.0
    if channels_last:
        f_t = f_t.contiguous(memory_format=torch.channels_last)
        f_s = f_s.contiguous(memory_format=torch.channels_last)
    maps, grads = [], []
    for fn in (distillation_map, distillation_map_reference):
        t, s = f_t.clone().requires_grad_(), f_s.clone().requires_grad_()
        m = fn(t, s, 0.1, normalization)
        (m * torch.linspace(0.5, 2.0, m.numel()).view_as(m)).sum().backward()
        maps.append(m.detach())
        grads.append((t.grad, s.grad))
    torch.testing.assert_close(maps[0], maps[1], atol=1e-6, rtol=1e-5)
    for mine, printed in zip(grads[0], grads[1]):
        scale = float(printed.abs().max())
        torch.testing.assert_close(mine, printed, atol=1e-5 * scale, rtol=1e-4)
    assert bool((maps[0] >= 0).all())


def test_map_is_zero_for_identical_features_and_shaped_b_h_w():
    a = torch.randn(3, 8, 4, 6)
    m = distillation_map(a, a.clone())
    assert m.shape == (3, 4, 6)
    torch.testing.assert_close(m, torch.zeros_like(m), atol=1e-6, rtol=0)


def test_pixel_loss_is_the_mean_of_level_means():
    torch.manual_seed(1)
    ref = [torch.randn(2, 4, 8, 8), torch.randn(2, 8, 4, 4)]
    stu = [torch.randn(2, 4, 8, 8), torch.randn(2, 8, 4, 4)]
    expected = (distillation_map(ref[0], stu[0]).mean() + distillation_map(ref[1], stu[1]).mean()) / 2
    torch.testing.assert_close(pyramid_loss(ref, stu), expected)
    total = dskd_loss([(ref, stu), (ref, ref)])
    torch.testing.assert_close(total, expected)  # the second pair contributes zero


def test_flat_form_is_one_cosine_per_sample():
    torch.manual_seed(2)
    a, b = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    cos = torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)
    lam = 0.1
    torch.testing.assert_close(pyramid_loss([a], [b], lam, loss_form="flat"), ((1 + lam) * (1 - cos)).mean())
    assert not math.isclose(pyramid_loss([a], [b], lam, loss_form="flat").item(),
                            pyramid_loss([a], [b], lam, loss_form="pixel").item(), rel_tol=1e-3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(normalization="l1"), "unknown normalization 'l1'"),
    (dict(loss_form="global"), "unknown loss_form 'global'"),
])
def test_bad_options_are_named(kwargs, message):
    a = torch.randn(1, 2, 2, 2)
    with pytest.raises(ValueError, match=message):
        pyramid_loss([a], [a], **kwargs)


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match=r"same shape.*\(1, 2, 2, 2\).*\(1, 2, 3, 3\)"):
        distillation_map(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 3, 3))
