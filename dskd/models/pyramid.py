"""The ResNet18 feature pyramid shared by the teacher T and the student encoder S_e (Sec. 3.1)."""
from __future__ import annotations

from typing import NamedTuple

import torchvision
from torch import Tensor, nn


class Pyramid(NamedTuple):
    """Feature maps of the paper's conv2_x, conv3_x and conv4_x (k = 1, 2, 3).

    For an input of size H x W: (B, 64, H/4, W/4), (B, 128, H/8, W/8), (B, 256, H/16, W/16).
    """

    conv2_x: Tensor
    conv3_x: Tensor
    conv4_x: Tensor


#: channels and stride of each pyramid level, in the order of :class:`Pyramid`
PYRAMID_CHANNELS = (64, 128, 256)
PYRAMID_STRIDES = (4, 8, 16)


class ResNet18Pyramid(nn.Module):
    """torchvision ResNet18 stem + layer1..layer3 (conv1..conv4_x), returning a :class:`Pyramid`.

    Attribute names follow torchvision, so a torchvision ResNet18 state dict loads directly
    (without ``layer4`` and ``fc``).
    """

    def __init__(self) -> None:
        super().__init__()
        resnet = torchvision.models.resnet18(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.layer1, self.layer2, self.layer3 = resnet.layer1, resnet.layer2, resnet.layer3

    def forward(self, x: Tensor) -> Pyramid:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(x.shape)}")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f1 = self.layer1(x)   # conv2_x: (B, 64, H/4, W/4)
        f2 = self.layer2(f1)  # conv3_x: (B, 128, H/8, W/8)
        f3 = self.layer3(f2)  # conv4_x: (B, 256, H/16, W/16)
        return Pyramid(f1, f2, f3)
