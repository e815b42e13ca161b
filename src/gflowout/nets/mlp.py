"""The paper's MNIST network: 784 -> 1024 -> 1024 -> 1024 -> 10, LeakyReLU, a unit site after each hidden layer."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from gflowout.nets.base import MaskedNet
from gflowout.nets.sites import MaskSampler, MaskSite


class MLP(MaskedNet):
    """Fully connected classifier with one unit-wise mask site after each hidden activation.

    Defaults follow the official MLP_GFN: hidden (1024, 1024, 1024), LeakyReLU(0.01), masks after
    the activation, rescaled by width / number kept (`rescale=True`). Inputs of shape
    `input_shape` are flattened, so (1, 28, 28) images and (784,) vectors both work.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...] = (1, 28, 28),
        num_classes: int = 10,
        hidden: Sequence[int] = (1024, 1024, 1024),
        negative_slope: float = 0.01,
        rescale: bool = True,
    ) -> None:
        super().__init__(input_shape, num_classes)
        if not hidden:
            raise ValueError("MLP needs at least one hidden layer (each carries a mask site)")
        in_features = 1
        for d in self.input_shape:
            in_features *= d
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(in_features, width), nn.LeakyReLU(negative_slope), MaskSite(width, "unit", rescale)]
            in_features = width
        self.hidden = nn.Sequential(*layers)
        self.head = nn.Linear(in_features, num_classes)
        self.register_sites()
        # position of each site's MaskSite in `self.hidden`, for `forward_from_site`
        self._site_positions = tuple(i for i, layer in enumerate(self.hidden) if isinstance(layer, MaskSite))

    def body(self, x: Tensor) -> Tensor:
        return self.head(self.hidden(x.flatten(1)))

    def forward_from_site(self, index: int, activation: Tensor, sampler: MaskSampler | None = None) -> Tensor:
        """Logits [batch, num_classes] from site `index`'s pre-mask activation [batch, width] (see `MaskedNet`):
        the site itself (with `sampler`), the later hidden layers and the head."""
        if not 0 <= index < len(self._site_positions):
            raise IndexError(f"site index {index} out of range: this MLP has {len(self._site_positions)} sites")
        layers = list(self.hidden)[self._site_positions[index] :]
        with self.using(sampler):
            for layer in layers:
                activation = layer(activation)
            return self.head(activation)
