"""`egokit.models.attention`: which kernel ``auto`` picks, and that the per-call choice is the same math."""

import pytest
import torch

from egokit.models.attention import SDPA_MIN_KEYS, attention, resolve_kernel

CUDA, CPU = torch.device("cuda"), torch.device("cpu")  # constructing a device needs no GPU


@pytest.mark.parametrize("num_keys", [None, 5, 785])
def test_auto_is_matmul_on_cpu_whatever_the_length(num_keys):
    assert resolve_kernel("auto", CPU, num_keys) == "matmul"


def test_auto_on_cuda_uses_sdpa_only_for_long_key_sequences():
    assert resolve_kernel("auto", CUDA, 5) == "matmul"  # time attention: frames + CLS
    assert resolve_kernel("auto", CUDA, 15) == "sdpa"  # a padded caption
    assert resolve_kernel("auto", CUDA, SDPA_MIN_KEYS - 1) == "matmul"
    assert resolve_kernel("auto", CUDA, SDPA_MIN_KEYS) == "sdpa"
    assert resolve_kernel("auto", CUDA, 197) == "sdpa"  # space attention, 14 x 14 patches + CLS
    assert resolve_kernel("auto", CUDA) == "auto"  # length unknown yet: attention() decides per call


@pytest.mark.parametrize("kernel", ["sdpa", "matmul"])
def test_explicit_kernels_are_never_overridden(kernel):
    assert resolve_kernel(kernel, CUDA, 5) == kernel
    assert resolve_kernel(kernel, CPU, 785) == kernel


def test_unknown_kernel_is_rejected():
    q = torch.randn(1, 2, 3, 4)
    with pytest.raises(ValueError, match="unknown attention kernel 'flash'"):
        attention(q, q, q, kernel="flash")


@pytest.mark.parametrize("num_keys", [5, SDPA_MIN_KEYS + 3])
def test_auto_matches_both_explicit_kernels_with_a_padding_mask(num_keys):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, 7, 8, generator=g)
    k, v = torch.randn(2, 2, 3, num_keys, 8, generator=g)
    mask = torch.ones(2, 1, 1, num_keys, dtype=torch.bool)
    mask[1, ..., num_keys - 2:] = False
    auto = attention(q, k, v, mask, kernel="auto")
    for kernel in ("sdpa", "matmul"):
        torch.testing.assert_close(auto, attention(q, k, v, mask, kernel=kernel), atol=1e-5, rtol=1e-5)
