"""`DeepEnsemble` (method "ensemble"): M independently initialised copies of one backbone, no masks.

Deep ensembles, Lakshminarayanan, Pritzel & Blundell (NeurIPS 2017): each member is trained alone with
the ordinary cross-entropy; the predictive is the mean of the members' softmaxes. Here the members are
trained in one run, on the same batches in the same order, and differ by their initialisation, which
Fort, Hu & Lakshminarayanan (2019, "Deep Ensembles: A Loss Landscape Perspective") found to be the main
source of their diversity (Lakshminarayanan et al. also train every member on the whole data set, in a
different random order; the shared order is the one difference from M separate runs).

The training loss is the SUM of the members' mean cross-entropies: the members' parameters are disjoint,
so each member's gradient is exactly the one it would get alone, and one Adam (a per-parameter optimiser)
over all of them equals M separate Adams. Two things are shared: SGD/Adam weight decay is per parameter (no
difference), but gradient-norm clipping (`clip_norm`) clips the norm over ALL members. Cost: about M times
one training of the backbone (M forward and backward passes per batch), and M times its memory for weights
and optimiser state.

`predict(x, samples=M)` returns [M, batch, classes], one row per member, so every metric, shift, OOD
score and report built on per-sample logits applies unchanged. The sample count is fixed: another
`samples` raises a ValueError; `prediction_samples(S)` returns M, and the harness and the evaluation
use it (they record the M they used).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from gflowout.methods.base import DropoutMethod, GroupSpec, StepResult
from gflowout.methods.none import backbone_spec, classification_step
from gflowout.nets.base import MaskedNet
from gflowout.nets.sites import MaskSampler, ones_sampler

DEFAULT_MEMBERS = 5


class DeepEnsemble(DropoutMethod):
    """M members of the backbone `net`, each from its own initialisation; see the module docstring.

    net: member 0, kept as given. Members 1..M-1 are deep copies of it re-initialised
        (`MaskedNet.reset_parameters`) under torch seeds drawn once from torch's RNG at construction, so
        they are a function of the run's seed (the harness seeds torch before building the method).
    members: M >= 1 (default 5). M = 1 is the plain network (`none`).
    init_seed: seed the members' initialisations with it instead of drawing one from torch's RNG.
    One parameter group, "backbone" (every member's weights; defaults from `backbone_spec`).
    """

    name = "ensemble"

    def __init__(self, net: MaskedNet, members: int = DEFAULT_MEMBERS, init_seed: int | None = None) -> None:
        super().__init__(net)
        if isinstance(members, bool) or int(members) != members or members < 1:
            raise ValueError(f"members must be a positive integer (the ensemble size M), got {members!r}")
        self.members_count = int(members)
        if init_seed is None:
            init_seed = int(torch.randint(0, 2**62, (1,)))
        self.init_seed = int(init_seed)
        self.others = nn.ModuleList(
            reinitialised_copy(net, self.init_seed + index) for index in range(1, self.members_count)
        )

    @property
    def members(self) -> list[MaskedNet]:
        """The M member networks, member 0 (`self.net`) first."""
        return [self.net, *self.others]

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"backbone": [p for member in self.members for p in member.parameters()]}

    def group_defaults(self) -> dict[str, GroupSpec]:
        return {"backbone": backbone_spec(self.net)}

    def compute_losses(self, x: Tensor, y: Tensor) -> StepResult:
        """Sum over members of each member's mean cross-entropy on the batch (logs: their mean, and the accuracy
        of the ensemble's predictive)."""
        losses, logits = [], []
        for member in self.members:
            cross_entropy, member_logits = classification_step(member, x, y, None)
            losses.append(cross_entropy.mean())
            logits.append(member_logits.detach())
        total = torch.stack(losses).sum()
        mean_probs = torch.stack(logits).float().softmax(dim=-1).mean(dim=0)
        accuracy = (mean_probs.argmax(dim=1) == y).float().mean()
        return StepResult(
            losses={"backbone": total},
            logs={"cross_entropy": total.detach() / self.members_count, "accuracy": accuracy},
        )

    def prediction_sampler(self) -> MaskSampler | None:
        return ones_sampler

    def prediction_samples(self, requested: int) -> int:
        """Always M: one sample per member, whatever was requested."""
        return self.members_count

    def sample_logits(self, x: Tensor, samples: int) -> Tensor:
        """Logits [M, batch, classes], row m from member m (`predict` accepts only samples=None or M)."""
        return torch.stack([member(x, None) for member in self.members])

    def extra_repr(self) -> str:
        return f"members={self.members_count}, init_seed={self.init_seed}"


def reinitialised_copy(net: MaskedNet, seed: int) -> MaskedNet:
    """A deep copy of `net` with fresh initial weights drawn under seed `seed` from the default generator of the
    net's device (every RNG state is left as it was: `torch.manual_seed` would also reseed every GPU). A ValueError
    when nothing changed (a backbone whose layers have no `reset_parameters`)."""
    member = copy.deepcopy(net)
    device = next((p.device for p in net.parameters()), torch.device("cpu"))
    on_gpu = device.type == "cuda"
    index = device.index if device.index is not None else (torch.cuda.current_device() if on_gpu else 0)
    with torch.random.fork_rng(devices=[index] if on_gpu else []):
        generator = torch.cuda.default_generators[index] if on_gpu else torch.default_generator
        generator.manual_seed(seed)
        member.reset_parameters()
    if all(torch.equal(a, b) for a, b in zip(net.parameters(), member.parameters())):
        raise ValueError(
            f"{type(net).__name__}.reset_parameters() changed no weight, so every ensemble member would be the same "
            "network; give the backbone a reset_parameters() that draws fresh initial weights"
        )
    return member
