"""Small building blocks shared by the students and the embedding (torchvision naming)."""
from __future__ import annotations

from torch import Tensor, nn


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, used in residual shortcuts."""
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


def deconv2x2(in_ch: int, out_ch: int) -> nn.ConvTranspose2d:
    """2x2 transposed convolution with stride 2: doubles height and width."""
    return nn.ConvTranspose2d(in_ch, out_ch, kernel_size=2, stride=2, bias=False)


def conv_bn_relu(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv -> BN -> ReLU: the "convolutional block" of Sec. 3.2."""
    return nn.Sequential(conv3x3(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016) whose shortcut is a 1x1 conv + BN when the shape changes."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_ch, out_ch, stride)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_ch, out_ch)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(conv1x1(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class UpBasicBlock(nn.Module):
    """ResNet basic block reversed: where ResNet downsamples with stride 2, this upsamples
    with a 2x2 stride-2 transposed convolution, in the main path and in the shortcut."""

    def __init__(self, in_ch: int, out_ch: int, upsample: bool = False) -> None:
        super().__init__()
        self.conv1 = deconv2x2(in_ch, out_ch) if upsample else conv3x3(in_ch, out_ch)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_ch, out_ch)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if upsample:
            self.shortcut = nn.Sequential(deconv2x2(in_ch, out_ch), nn.BatchNorm2d(out_ch))
        elif in_ch != out_ch:
            self.shortcut = nn.Sequential(conv1x1(in_ch, out_ch), nn.BatchNorm2d(out_ch))

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))
