"""Deep feature embedding (DFE), the bottleneck between S_e and S_d (Sec. 3.2, Fig. 4)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .blocks import BasicBlock, conv_bn_relu
from .pyramid import Pyramid

#: channels of F_emb, the decoder's input (at H/32 x W/32)
EMBEDDING_CHANNELS = 512


class DeepFeatureEmbedding(nn.Module):
    """DFE (Fig. 4): fuse S_e's three feature maps into one low-resolution embedding F_emb.

    F1 (64 @ H/4) goes through two 3x3 stride-2 conv blocks and F2 (128 @ H/8) through one, both to
    256 @ H/16; they are concatenated with F3 (256 @ H/16) into 768 channels, and a residual block
    with stride 2, whose shortcut is a 1x1 conv, gives F_emb (512 @ H/32). ``blocks=2`` adds a second
    512 -> 512 residual block at H/32 (RD4AD's bottleneck; see chapter 5 on Table 6).
    """

    def __init__(self, out_channels: int = EMBEDDING_CHANNELS, blocks: int = 1) -> None:
        super().__init__()
        if blocks not in (1, 2):
            raise ValueError(f"blocks={blocks!r} is invalid: expected 1 (Fig. 4 as drawn) or 2 (RD4AD's bottleneck)")
        self.down1 = nn.Sequential(conv_bn_relu(64, 128, stride=2), conv_bn_relu(128, 256, stride=2))
        self.down2 = conv_bn_relu(128, 256, stride=2)
        self.fuse = BasicBlock(3 * 256, out_channels, stride=2)
        # a second residual block at H/32, as in RD4AD's bottleneck (Table 6's 39.3 M parameters point to it)
        self.fuse2: nn.Module = BasicBlock(out_channels, out_channels) if blocks == 2 else nn.Identity()

    def forward(self, features: Pyramid) -> Tensor:
        f1, f2, f3 = features
        fused = torch.cat([self.down1(f1), self.down2(f2), f3], dim=1)  # (B, 768, H/16, W/16)
        return self.fuse2(self.fuse(fused))  # (B, 512, H/32, W/32)


class LastLayerEmbedding(nn.Module):
    """The no-DFE path of Table 8: only S_e's last map (conv4_x) is downsampled and passed to S_d.

    One 3x3 stride-2 conv block, 256 @ H/16 -> 512 @ H/32, so S_d receives the same shape as with
    the DFE but without the fused F1 and F2.
    """

    def __init__(self, out_channels: int = EMBEDDING_CHANNELS) -> None:
        super().__init__()
        self.down = conv_bn_relu(256, out_channels, stride=2)

    def forward(self, features: Pyramid) -> Tensor:
        return self.down(features.conv4_x)
