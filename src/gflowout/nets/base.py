"""`MaskedNet`: a classifier whose mask sites a dropout method can drive."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from gflowout.nets.sites import MaskSampler, MaskSite, Site
from gflowout.optim_spec import GroupSpec


class MaskedNet(nn.Module):
    """Base class of every backbone: it finds its `MaskSite` modules and routes a sampler to them.

    Subclasses build their layers (with `MaskSite` modules where masks go), then call
    `self.register_sites()`, and implement `body(x) -> logits`. `forward(x, sampler)` runs `body`
    with `sampler` active at every site; with `sampler=None` no mask is applied.

    input_shape: the shape of one example (for example (1, 28, 28)); `validate_input` checks it.
    num_classes: the number of classes of the softmax head.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.input_shape = tuple(int(d) for d in input_shape)
        self.num_classes = int(num_classes)
        self._site_modules: list[MaskSite] = []
        self._sites: tuple[Site, ...] = ()

    # --- sites ---------------------------------------------------------------------------------
    def register_sites(self) -> None:
        """Find the `MaskSite` modules (in registration order, which must be forward order)."""
        modules = [(name, m) for name, m in self.named_modules() if isinstance(m, MaskSite)]
        if not modules:
            raise ValueError(f"{type(self).__name__} has no MaskSite modules: nothing for a method to mask")
        sites = []
        for index, (name, module) in enumerate(modules):
            module.site = Site(index=index, name=name, width=module.width, kind=module.kind, rescale=module.rescale)
            sites.append(module.site)
        # A plain list, not nn.ModuleList: the modules are already children of this net.
        object.__setattr__(self, "_site_modules", [m for _, m in modules])
        self._sites = tuple(sites)

    @property
    def sites(self) -> tuple[Site, ...]:
        """The mask sites in forward order."""
        return self._sites

    @contextmanager
    def using(self, sampler: MaskSampler | None) -> Iterator[None]:
        """Make `sampler` active at every site for the duration of the block."""
        for module in self._site_modules:
            module.sampler = sampler
        try:
            yield
        finally:
            for module in self._site_modules:
                module.sampler = None

    def default_optimizer(self) -> GroupSpec:
        """The optimiser this backbone's weights train with unless a config says otherwise.

        Every method reads it (`methods.none.backbone_spec`), so all methods train one backbone alike.
        Default: Adam, lr 1e-3, no weight decay (the MNIST MLP scripts of the paper); a backbone whose
        published recipe differs overrides it (CifarResNet18: SGD).
        """
        return GroupSpec(lr=1e-3, weight_decay=0.0, optimizer="adam")

    def reset_parameters(self) -> None:
        """Draw fresh initial weights from torch's RNG (and reset buffers such as BatchNorm statistics): every
        submodule's own `reset_parameters`. Why: a deep ensemble re-initialises copies of one backbone. Backbones
        with an initialisation of their own extend it (`CifarResNet18`)."""
        for module in self.modules():
            if module is not self and callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()  # type: ignore[operator]  # torch types Module attributes as Tensor | Module

    # --- forward -------------------------------------------------------------------------------
    def body(self, x: Tensor) -> Tensor:
        """The network itself: [batch, *input_shape] -> logits [batch, num_classes]."""
        raise NotImplementedError

    def forward(self, x: Tensor, sampler: MaskSampler | None = None) -> Tensor:
        with self.using(sampler):
            return self.body(x)

    def forward_from_site(self, index: int, activation: Tensor, sampler: MaskSampler | None = None) -> Tensor | None:
        """Resume a forward pass at site `index`: logits [batch, num_classes] from that site's pre-mask activation.

        `sampler` is called at site `index` (with `activation`) and at every later site, exactly as in
        `forward`; the layers before the site are not run. Why: a method that makes a second pass with
        other masks (Contextual dropout's ARM pseudo pass) need not recompute layers whose output it
        already has. Returns None when the backbone cannot resume there (this default): the caller
        then runs `forward(x, sampler)`. Backbones override it where it is simple (`MLP`).
        """
        return None

    # --- validation ----------------------------------------------------------------------------
    def validate_input(self, x: Tensor, name: str = "x") -> None:
        """Raise a ValueError naming `name` when x is not a finite float batch of `input_shape`, or is float32
        for a float64 network or the other way round (torch's own error would come later, from a layer)."""
        validate_batch(x, self.input_shape, name=name)
        weight = next((p for p in self.parameters() if p.is_floating_point()), None)
        full = (torch.float32, torch.float64)  # bf16 / fp16 inputs are autocast's and Lightning's business
        if weight is not None and x.dtype in full and weight.dtype in full and x.dtype != weight.dtype:
            convert = "x.double()" if weight.dtype == torch.float64 else "x.float()"
            raise ValueError(
                f"{name} has dtype {x.dtype} but the network's parameters are {weight.dtype}; convert with "
                f"{convert} (or the model with .to({x.dtype}))"
            )

    def validate_labels(self, y: Tensor, batch: int, name: str = "y") -> None:
        """Raise a ValueError when y is not an integer vector of `batch` labels in [0, num_classes)."""
        validate_labels(y, batch, self.num_classes, name=name)


def validate_batch(x: Tensor, input_shape: tuple[int, ...], name: str = "x") -> None:
    """Check dtype (floating), shape ([batch, *input_shape]) and finiteness of an input batch."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}; convert with x.float()")
    expected = ("batch",) + tuple(input_shape)
    if x.dim() != len(input_shape) + 1 or tuple(x.shape[1:]) != tuple(input_shape):
        raise ValueError(f"{name} has shape {tuple(x.shape)}, expected {expected}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(x.shape)})")
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"{name} contains {bad} NaN or infinite value(s); clean the input before training or prediction"
        )


def validate_labels(y: Tensor, batch: int, num_classes: int, name: str = "y") -> None:
    """Check that y is an integer vector [batch] with every label in [0, num_classes)."""
    if not isinstance(y, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(y).__name__}")
    if y.dtype != torch.long:  # cross-entropy and the label embeddings take int64 labels only
        raise ValueError(
            f"{name} must hold int64 (torch.long) class labels, got dtype {y.dtype}; convert with y.long()"
        )
    if y.dim() != 1 or y.shape[0] != batch:
        raise ValueError(f"{name} has shape {tuple(y.shape)}, expected ({batch},)")
    if batch and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(
            f"{name} has a label out of range: found min {int(y.min())}, max {int(y.max())}; "
            f"expected labels in [0, {num_classes - 1}]"
        )
