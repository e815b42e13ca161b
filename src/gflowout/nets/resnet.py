"""CIFAR ResNet-18 with channel-wise mask sites on the residual branches.

Written in plain torch (no torchvision): a 3x3 stem (64 channels, stride 1, no bias), no max-pool,
BasicBlocks [2, 2, 2, 2] with [64, 128, 256, 512] channels, global average pooling and a linear head,
as ResNet_GFN's modified torchvision resnet18. Each masked block carries one channel-wise
`MaskSite` on its residual branch, after the second batch norm and before the residual add, with no
rescaling (Resnet_GFN.py L431).
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from gflowout.nets.base import MaskedNet
from gflowout.nets.sites import MaskSite
from gflowout.optim_spec import GroupSpec

MaskBlocks = Literal["all", "last2"]

STAGE_CHANNELS = (64, 128, 256, 512)
BLOCKS_PER_STAGE = 2


class BasicBlock(nn.Module):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN -> [mask site] -> + shortcut -> ReLU.

    in_channels, out_channels: channel counts; stride: of the first conv (and the 1x1 shortcut).
    masked: whether the residual branch carries a channel-wise mask site of width out_channels.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, masked: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.mask = MaskSite(out_channels, "channel", rescale=False) if masked else nn.Identity()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.mask(self.bn2(self.conv2(out)))
        return F.relu(out + self.shortcut(x))


class CifarResNet18(MaskedNet):
    """ResNet-18 for 32x32 images with a channel-wise mask site per masked BasicBlock.

    num_classes: size of the softmax head (10 for CIFAR-10, 100 for CIFAR-100).
    mask_blocks: "all" puts a site on all 8 blocks (the final official code, Resnet_GFN.py L52);
        "last2" only on the two layer4 blocks (512 channels each), as the paper-era code.
    input_shape: one example, (3, 32, 32) by default; other sizes work (global average pooling).
    width: channels of the stem and first stage (64, the standard ResNet-18); the stages get
        width x (1, 2, 4, 8) channels. Smaller widths give narrow networks for quick tests.
    Input [batch, *input_shape] -> logits [batch, num_classes].
    """

    def __init__(
        self,
        num_classes: int = 10,
        mask_blocks: MaskBlocks = "all",
        input_shape: tuple[int, ...] = (3, 32, 32),
        width: int = STAGE_CHANNELS[0],
    ) -> None:
        super().__init__(input_shape, num_classes)
        if mask_blocks not in ("all", "last2"):
            raise ValueError(f"mask_blocks must be 'all' or 'last2', got {mask_blocks!r}")
        if len(self.input_shape) != 3:
            raise ValueError(f"CifarResNet18 needs input_shape (channels, height, width), got {self.input_shape}")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int (64 for the standard ResNet-18), got {width!r}")
        self.mask_blocks = mask_blocks
        self.width = width
        stage_channels = tuple(width * c // STAGE_CHANNELS[0] for c in STAGE_CHANNELS)
        total_blocks = len(STAGE_CHANNELS) * BLOCKS_PER_STAGE
        first_masked = 0 if mask_blocks == "all" else total_blocks - 2
        self.stem = nn.Sequential(
            nn.Conv2d(self.input_shape[0], stage_channels[0], 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(stage_channels[0]),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        in_channels = stage_channels[0]
        for stage, channels in enumerate(stage_channels):
            for i in range(BLOCKS_PER_STAGE):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(in_channels, channels, stride, masked=len(blocks) >= first_masked))
                in_channels = channels
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(in_channels, num_classes)
        self._init_weights()
        self.register_sites()

    def default_optimizer(self) -> GroupSpec:
        """SGD with Nesterov momentum 0.9, lr 0.1, weight decay 5e-4: the official CIFAR Concrete and Contextual
        dropout scripts' recipe for this network."""
        return GroupSpec(lr=0.1, weight_decay=5e-4, optimizer="sgd", momentum=0.9, nesterov=True)

    def reset_parameters(self) -> None:
        """Fresh initial weights, drawn as at construction (the layers' defaults, then `_init_weights`)."""
        super().reset_parameters()
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's ResNet initialisation: Kaiming-normal (fan_out) convs, BN weight 1 and bias 0."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def site_consumers(self) -> list[list[nn.Parameter]]:
        """Per site, the weights that read its block's output: the next block's conv1 and shortcut
        conv, or the head after the last block (Concrete dropout's weight regulariser uses them)."""
        blocks = list(self.blocks)
        consumers = []
        for i, block in enumerate(blocks):
            if not isinstance(block.mask, MaskSite):
                continue
            if i + 1 == len(blocks):
                consumers.append([self.head.weight])
                continue
            following = blocks[i + 1]
            weights = [following.conv1.weight]  # type: ignore[union-attr]  # torch types Module attributes as Tensor | Module
            if isinstance(following.shortcut, nn.Sequential):
                weights.append(following.shortcut[0].weight)
            consumers.append(weights)  # type: ignore[arg-type]  # torch types Module attributes as Tensor | Module
        return consumers  # type: ignore[return-value]  # torch types Module parameters as Tensor

    def body(self, x: Tensor) -> Tensor:
        features = self.blocks(self.stem(x))
        return self.head(features.mean(dim=(2, 3)))
