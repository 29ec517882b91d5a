"""TensorFlow 'SAME' padding that stays correct in an exported ONNX graph at every input size.

The upstream ``Conv2dDynamicSamePadding`` computes its padding with ``math.ceil`` and ``if pad > 0``:
the ONNX tracer freezes those to the example input's size, so an exported graph silently pads
wrongly for other sizes (cosine error ~0.2 on odd sizes). Here stride-1 convolutions use the
convolution's own symmetric padding, and strided ones compute the pad with integer ops the tracer
records; the arithmetic, and so the output, is identical to upstream.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TF 'SAME' padding for any input size (square odd kernels, k >= stride)."""

    def __init__(self, conv: nn.Conv2d):
        k, s = conv.kernel_size[0], conv.stride[0]
        square = tuple(conv.kernel_size) == (k, k) and tuple(conv.stride) == (s, s)
        if not square or k % 2 == 0 or k < s or tuple(conv.dilation) != (1, 1):
            raise ValueError(f"unsupported convolution for SAME padding: {conv}")
        super().__init__(
            conv.in_channels, conv.out_channels, k, stride=s, padding=k // 2 if s == 1 else 0,
            groups=conv.groups, bias=conv.bias is not None,
        )
        self.weight = conv.weight
        self.bias = conv.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride[0]
        if s > 1:
            pad_h = _same_pad(x.shape[-2], self.kernel_size[0], s)
            pad_w = _same_pad(x.shape[-1], self.kernel_size[0], s)
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return super().forward(x)


def _same_pad(size: int, kernel: int, stride: int) -> int:
    """Total padding so the output has ceil(size / stride) cells; >= 0 because kernel >= stride."""
    return ((size + stride - 1) // stride - 1) * stride + kernel - size


def replace_same_padding_convs(module: nn.Module, conv_type: type[nn.Conv2d]) -> None:
    """Swap every ``conv_type`` submodule for a :class:`SameConv2d` sharing its parameters."""
    for name, child in module.named_children():
        if isinstance(child, conv_type):
            setattr(module, name, SameConv2d(child))
        else:
            replace_same_padding_convs(child, conv_type)
