"""The second student S_d: ResNet18 reversed (Sec. 3.1, Fig. 3)."""
from __future__ import annotations

from torch import Tensor, nn

from .blocks import UpBasicBlock
from .embedding import EMBEDDING_CHANNELS
from .pyramid import Pyramid


def _up_layer(in_ch: int, out_ch: int, blocks: int = 2) -> nn.Sequential:
    layers = [UpBasicBlock(in_ch, out_ch, upsample=True)]
    layers += [UpBasicBlock(out_ch, out_ch) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class StudentDecoder(nn.Module):
    """S_d: three layers of two basic blocks, each layer doubling the resolution where ResNet halves it.

    F_emb (512 @ H/32) -> 256 @ H/16 -> 128 @ H/8 -> 64 @ H/4, returned as a :class:`Pyramid` in the
    teacher's order (conv2_x, conv3_x, conv4_x) so the three maps align with T's level by level.
    """

    def __init__(self, in_channels: int = EMBEDDING_CHANNELS) -> None:
        super().__init__()
        self.layer1 = _up_layer(in_channels, 256)  # mirrors conv4_x
        self.layer2 = _up_layer(256, 128)  # mirrors conv3_x
        self.layer3 = _up_layer(128, 64)  # mirrors conv2_x

    def forward(self, embedding: Tensor) -> Pyramid:
        d3 = self.layer1(embedding)  # (B, 256, H/16, W/16)
        d2 = self.layer2(d3)  # (B, 128, H/8, W/8)
        d1 = self.layer3(d2)  # (B, 64, H/4, W/4)
        return Pyramid(d1, d2, d3)
