"""`gflowout.wrap`: turn the dropout layers of a user's own `nn.Module` into mask sites.

Every method (GFlowOut, MC, Concrete, Contextual, ...) then applies to a model we did not write.
Like torch-uncertainty's `mc_dropout` wrapper, it validates early: a module without dropout layers,
a dropout layer called twice in one forward, or one never called is an error naming the layer.
"""

from __future__ import annotations

import copy as copy_module
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from gflowout.nets.base import MaskedNet
from gflowout.nets.sites import MaskSite, Site, SiteKind

#: dropout module types that become unit-wise sites (mask the last dimension).
UNIT_DROPOUTS: tuple[type[nn.Module], ...] = (nn.Dropout,)
#: dropout module types that become channel-wise sites (mask dimension 1 of [batch, channels, ...]).
CHANNEL_DROPOUTS: tuple[type[nn.Module], ...] = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


class WrappedNet(MaskedNet):
    """A user's module whose dropout layers are `MaskSite`s; built by `wrap`.

    module: the (copied) user module; its forward must take the input batch only and return logits.
    dropout_rates: the drop probability p of each replaced dropout layer, by site name (a method may
        use it, for example as MC dropout's rate).
    Sites are indexed in execution order (found by a trace forward), not registration order.
    """

    def __init__(self, module: nn.Module, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__(input_shape, num_classes)
        self.module = module
        self.dropout_rates: dict[str, float] = {}

    def register_sites_in_order(self, ordered: list[tuple[str, MaskSite]]) -> None:
        """Register sites in the given (execution) order; names are paths inside this net."""
        sites = []
        for index, (name, site_module) in enumerate(ordered):
            site_module.site = Site(
                index=index, name=name, width=site_module.width, kind=site_module.kind, rescale=site_module.rescale
            )
            sites.append(site_module.site)
        object.__setattr__(self, "_site_modules", [m for _, m in ordered])
        self._sites = tuple(sites)

    def body(self, x: Tensor) -> Tensor:
        # PyTorch's fused transformer fast path (eval mode, no grad) skips the python submodules,
        # and with them our mask sites; switch it off while the net runs.
        with _mha_fastpath_disabled():
            return self.module(x)


@contextmanager
def _mha_fastpath_disabled() -> Iterator[None]:
    backend = getattr(torch.backends, "mha", None)
    if backend is None or not hasattr(backend, "set_fastpath_enabled"):
        yield
        return
    previous = backend.get_fastpath_enabled()
    backend.set_fastpath_enabled(False)
    try:
        yield
    finally:
        backend.set_fastpath_enabled(previous)


def wrap(
    module: nn.Module,
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    rescale: bool = True,
    skip: Iterable[str] = (),
    copy: bool = True,
) -> WrappedNet:
    """Return a `MaskedNet` whose mask sites replace the dropout layers of `module`.

    `nn.Dropout` on [batch, width] or [batch, tokens, width] becomes a unit-wise site over the last
    dimension (per example, shared over tokens); `nn.Dropout1d/2d/3d`, and `nn.Dropout` on conv maps
    [batch, channels, H, W(, D)], a channel-wise site over dimension 1. Functional dropout (`F.dropout`,
    the attention-weight dropout of `nn.MultiheadAttention`) is not a module and stays as it is.

    Args:
        module: a classifier whose forward takes x [batch, *input_shape] only and returns logits
            [batch, num_classes]; any extra arguments must have defaults.
        input_shape: the shape of one example; a zero batch of it runs once through the module (eval mode,
            no grad) to learn each site's width and the execution order.
        num_classes: the number of classes of the module's logits.
        rescale: binary masks rescale kept units by width / number kept, as the inverted scaling of the
            `nn.Dropout` they replace (True), or not (False).
        skip: names (as in `module.named_modules()`) of dropout layers to leave as they are.
        copy: wrap a deep copy (default) instead of changing `module` in place.

    Returns:
        A `WrappedNet` (a `MaskedNet`) with one mask site per dropout layer, in execution order, and each
        layer's rate in `dropout_rates` (site name -> p), which the built-in methods start from.

    Raises:
        TypeError: for a module that is not an `nn.Module`, is already a `MaskedNet`, or a malformed input_shape.
        ValueError: when the module has no dropout layer to wrap, a rate outside (0, 1), or unknown skip names.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"wrap needs an nn.Module, got {type(module).__name__}")
    if isinstance(module, MaskedNet):
        raise TypeError(f"{type(module).__name__} is already a MaskedNet; use it directly")
    if not isinstance(input_shape, (tuple, list, torch.Size)) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in input_shape
    ):
        raise TypeError(
            f"input_shape must be a tuple of positive ints, the shape of ONE example without the batch "
            f"(e.g. (784,) or (3, 32, 32)); got {input_shape!r}"
        )
    input_shape = tuple(input_shape)
    skip = set(skip)
    if copy:
        module = copy_module.deepcopy(module)
    # every path to each dropout instance: one layer reachable under two names (an attribute and a Sequential
    # slot) becomes one site at all of them, else the path the forward uses would keep the plain nn.Dropout
    paths: dict[int, list[str]] = {}
    for name, m in module.named_modules(remove_duplicate=False):
        if isinstance(m, UNIT_DROPOUTS + CHANNEL_DROPOUTS):
            paths.setdefault(id(m), []).append(name)
    dropouts = {names[0]: module.get_submodule(names[0]) for names in paths.values() if not skip.intersection(names)}
    unknown_skips = skip - {name for name, _ in module.named_modules(remove_duplicate=False)}
    if unknown_skips:
        raise ValueError(f"skip names {sorted(unknown_skips)} are not modules of {type(module).__name__}")
    for name, dropout in dropouts.items():
        if not 0.0 < float(dropout.p) < 1.0:  # type: ignore[arg-type]  # torch types Module attributes as Tensor | Module
            raise ValueError(
                f"dropout layer {name!r} has p = {dropout.p}; a mask site needs 0 < p < 1 (p = 0 never drops, p = 1 "
                "always does): set the rate of the layers that should become sites, or pass the others in skip=[...]"
            )
    if not dropouts:
        raise ValueError(
            f"{type(module).__name__} has no nn.Dropout/Dropout1d/2d/3d layer to turn into a mask site "
            f"(functional F.dropout calls cannot be wrapped); add nn.Dropout modules where masks should go"
        )
    widths, kinds, order = _trace_dropouts(module, dropouts, input_shape, num_classes)

    net = WrappedNet(module, input_shape, num_classes)
    ordered: list[tuple[str, MaskSite]] = []
    for name in order:
        dropout = dropouts[name]
        site_module = MaskSite(widths[name], kinds[name], rescale)
        for path in paths[id(dropout)]:
            _set_submodule(module, path, site_module)
        ordered.append((f"module.{name}", site_module))
        net.dropout_rates[f"module.{name}"] = float(dropout.p)  # type: ignore[arg-type]  # torch types Module attributes as Tensor | Module
    net.register_sites_in_order(ordered)
    return net


def _trace_dropouts(
    module: nn.Module, dropouts: dict[str, nn.Module], input_shape: tuple[int, ...], num_classes: int
) -> tuple[dict[str, int], dict[str, SiteKind], list[str]]:
    """Run one zero batch through `module`; return each dropout's width, site kind and the execution order."""
    calls: list[str] = []
    widths: dict[str, int] = {}
    kinds: dict[str, SiteKind] = {}

    def make_hook(name: str, channel: bool) -> Callable[[nn.Module, tuple[Tensor, ...]], None]:  # a forward pre-hook
        def hook(_module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
            activation = inputs[0]
            if activation.dim() < 2:
                raise ValueError(
                    f"dropout layer {name!r} sees a {activation.dim()}-d input; a mask site needs [batch, ...]"
                )
            kinds[name] = "channel" if channel or activation.dim() >= 4 else "unit"
            widths[name] = int(activation.shape[1] if kinds[name] == "channel" else activation.shape[-1])
            calls.append(name)

        return hook

    handles = [
        m.register_forward_pre_hook(make_hook(name, isinstance(m, CHANNEL_DROPOUTS))) for name, m in dropouts.items()
    ]
    was_training = module.training
    first = next(module.parameters(), None)
    if first is None:
        first = next(module.buffers(), None)  # type: ignore[assignment]  # a buffer stands in: only its device and dtype are read
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.get_default_dtype()
    device = first.device if first is not None else None  # a module on a GPU is traced there
    example = torch.zeros((2,) + tuple(int(d) for d in input_shape), dtype=dtype, device=device)
    try:
        module.eval()
        with torch.no_grad(), _mha_fastpath_disabled():
            output = module(example)
    except Exception as error:
        raise ValueError(
            f"a trace forward of {type(module).__name__} on a zero batch of shape {tuple(example.shape)} failed "
            f"({type(error).__name__}: {error}); check input_shape and that forward takes x only"
        ) from error
    finally:
        module.train(was_training)
        for handle in handles:
            handle.remove()
    if not isinstance(output, Tensor) or tuple(output.shape) != (2, num_classes):
        found = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise ValueError(f"{type(module).__name__} must return logits of shape (batch, {num_classes}), got {found}")
    repeated = sorted({name for name in calls if calls.count(name) > 1})
    if repeated:
        raise ValueError(
            f"dropout layer(s) {repeated} are called more than once per forward; a mask site must be used once. "
            "Give each call its own nn.Dropout module"
        )
    unused = sorted(set(dropouts) - set(calls))
    if unused:
        raise ValueError(
            f"dropout layer(s) {unused} are never called in a forward pass on input_shape {tuple(input_shape)}; "
            "pass them in skip=[...] to leave them alone"
        )
    return widths, kinds, calls


def _set_submodule(root: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, child = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, child, new)
