"""TensorFlow 'SAME' padding as a constant, so an exported ONNX graph folds it into its convolutions.

SAME padding depends on the input size only through ``size % stride``. When every strided
convolution sees a size divisible by its stride (the Embedder resizes images to multiples of the
backbone's total stride, which is the case the ImageNet weights were trained at), the padding is the
constant ``kernel - stride``, split floor/ceil. A constant ``Pad`` followed by a ``Conv`` is fused
by ONNX Runtime into the convolution, keeping the fast blocked (NCHWc) layout; the earlier per-size
padding was computed with shape ops at run time and broke that layout at every strided layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TF 'SAME' padding for inputs divisible by the stride (square odd kernels)."""

    def __init__(self, conv: nn.Conv2d):
        k, s = conv.kernel_size[0], conv.stride[0]
        square = tuple(conv.kernel_size) == (k, k) and tuple(conv.stride) == (s, s)
        if not square or k % 2 == 0 or k < s or tuple(conv.dilation) != (1, 1):
            raise ValueError(f"unsupported convolution for SAME padding: {conv}")
        super().__init__(
            conv.in_channels,
            conv.out_channels,
            k,
            stride=s,
            padding=k // 2 if s == 1 else 0,
            groups=conv.groups,
            bias=conv.bias is not None,
        )
        self.weight = conv.weight
        self.bias = conv.bias
        pad = k - s  # SAME's total padding when the size is divisible by the stride
        self.strided_pads = [pad // 2, pad - pad // 2] * 2  # F.pad order: left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] > 1:
            x = F.pad(x, self.strided_pads)
        return super().forward(x)


def replace_same_padding_convs(module: nn.Module, conv_type: type[nn.Conv2d]) -> None:
    """Swap every ``conv_type`` submodule for a :class:`SameConv2d` sharing its parameters."""
    for name, child in module.named_children():
        if isinstance(child, conv_type):
            setattr(module, name, SameConv2d(child))
        else:
            replace_same_padding_convs(child, conv_type)
