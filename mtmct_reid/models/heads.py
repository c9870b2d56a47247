"""Re-id heads on top of a feature map: PCB's horizontal stripes and the global bottleneck baseline.

Both follow the st-ReID / layumi Person_reID_baseline code: a linear bottleneck with BatchNorm and no ReLU,
dropout, then a classifier over the training identities. Test features are taken before the bottleneck.
"""

from __future__ import annotations

import torch
from torch import nn


class ClassBlock(nn.Module):
    """Linear bottleneck → BatchNorm (no ReLU) → dropout → classifier.

    Args:
        in_features: size of the incoming feature (2048 for a ResNet50 stripe).
        num_classes: number of training identities.
        bottleneck_dim: width of the bottleneck (256 for PCB stripes, 512 for the global head).
        dropout: dropout probability after the BatchNorm (0 disables it).

    Example:
        >>> block = ClassBlock(2048, 751, 256, 0.5)
        >>> block(torch.zeros(4, 2048)).shape
        torch.Size([4, 751])
    """

    def __init__(self, in_features: int, num_classes: int, bottleneck_dim: int, dropout: float):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Linear(in_features, bottleneck_dim),
            nn.BatchNorm1d(bottleneck_dim),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(p=dropout))
        self.bottleneck = nn.Sequential(*layers)
        self.classifier = nn.Linear(bottleneck_dim, num_classes)
        _init_bottleneck(self.bottleneck)
        # A tiny std keeps the initial logits near zero, so the first epochs do not overshoot.
        nn.init.normal_(self.classifier.weight, std=0.001)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.bottleneck(x))


def _init_bottleneck(block: nn.Sequential) -> None:
    for module in block:
        if isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight, a=0, mode="fan_out")
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm1d):
            nn.init.normal_(module.weight, 1.0, 0.02)
            nn.init.zeros_(module.bias)


class PCBHead(nn.Module):
    """Part-based Convolutional Baseline: ``num_parts`` horizontal stripes, one classifier each.

    Args:
        in_channels: channels of the backbone's feature map.
        num_classes: number of training identities.
        num_parts: number of horizontal stripes (6 in PCB and st-ReID).
        bottleneck_dim: per-stripe bottleneck width (256).
        dropout: dropout on the pooled stripes and inside each bottleneck (0.5).

    Example:
        >>> head = PCBHead(2048, 751)
        >>> fmap = torch.zeros(2, 2048, 24, 12)
        >>> len(head(fmap)), head.features(fmap).shape
        (6, torch.Size([2, 6, 2048]))
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        num_parts: int = 6,
        bottleneck_dim: int = 256,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.num_parts = num_parts
        self.pool = nn.AdaptiveAvgPool2d((num_parts, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.parts = nn.ModuleList(
            ClassBlock(in_channels, num_classes, bottleneck_dim, dropout) for _ in range(num_parts)
        )

    def features(self, fmap: torch.Tensor) -> torch.Tensor:
        """Stripe features [B, P, C] (average of each horizontal band of the map)."""
        return self.pool(fmap).flatten(2).transpose(1, 2)

    def forward(self, fmap: torch.Tensor) -> list[torch.Tensor]:
        stripes = self.dropout(self.features(fmap))
        return [part(stripes[:, i]) for i, part in enumerate(self.parts)]


class GlobalHead(nn.Module):
    """Global average pooling → bottleneck → classifier (the ResNet50 / DenseNet121 baselines).

    Args:
        in_channels: channels of the backbone's feature map.
        num_classes: number of training identities.
        bottleneck_dim: bottleneck width (512).
        dropout: dropout inside the bottleneck (0.5).

    Example:
        >>> head = GlobalHead(2048, 751)
        >>> fmap = torch.zeros(2, 2048, 16, 8)
        >>> head(fmap)[0].shape, head.features(fmap).shape
        (torch.Size([2, 751]), torch.Size([2, 1, 2048]))
    """

    num_parts = 1

    def __init__(
        self, in_channels: int, num_classes: int, bottleneck_dim: int = 512, dropout: float = 0.5
    ) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.block = ClassBlock(in_channels, num_classes, bottleneck_dim, dropout)

    def features(self, fmap: torch.Tensor) -> torch.Tensor:
        """The pooled feature as one part, [B, 1, C]."""
        return self.pool(fmap).flatten(1).unsqueeze(1)

    def forward(self, fmap: torch.Tensor) -> list[torch.Tensor]:
        return [self.block(self.features(fmap)[:, 0])]
