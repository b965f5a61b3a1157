"""How a search judges a trial before its end (its fidelity), one entry of FIDELITIES each:

- epochs: at the end of each epoch (the resource is the epoch, or under a per-trial --budget the milliseconds of
  training spent);
- time: under a per-trial --budget, also at rungs of the budget inside epochs (a 27th of it, then 3 times more), so a
  weak point costs seconds, not a whole epoch;
- images: the trial's whole recipe (all its epochs, or its whole budget scaled by the share) trained first on a ninth
  of the training images, then a third, then all of them, judged after each: a weak point costs a ninth of a trial,
  and a slow starter is judged at the end of its own schedule, not at its first epoch.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...choices import FIDELITY_HELP

RUNG_FACTOR = 3  # each rung of a multi-fidelity pruner gives the survivors 3 times the resource
FIRST_RUNG_SHARE = 27  # under a per-trial budget, the first rung is at a 27th of it
IMAGE_LEVELS = 3  # fidelity images: a ninth, a third, all


def rungs_ms(budget_minutes: float) -> list[int]:
    """The milliseconds of training at which a budgeted trial is judged before its end: a 27th of the budget, then 3
    times more each time (for 9 minutes: 20 s, 60 s, 180 s), whatever the length of an epoch."""
    whole = int(budget_minutes * 60_000)
    least = max(1, whole // FIRST_RUNG_SHARE)
    return [least * RUNG_FACTOR**k for k in range(16) if least * RUNG_FACTOR**(k + 1) <= whole]  # the end: its epoch's


@dataclass(frozen=True)
class Fidelity:
    name: str  # its help is in choices.FIDELITY_HELP, which the command line reads without importing this
    inside_epochs: bool = False  # judged at rungs of the budget inside epochs
    by_images: bool = False  # judged after trainings on a growing share of the training images

    @property
    def needs_budget(self) -> bool:
        """Rungs inside epochs are shares of a per-trial budget: there must be one."""
        return self.inside_epochs

    def image_counts(self, train_size: int) -> list[int]:
        """The training images of each training of a trial: [N/9, N/3, N] by images, else [N]."""
        levels = IMAGE_LEVELS if self.by_images else 1
        return [max(1, train_size // RUNG_FACTOR**k) for k in reversed(range(levels))]

    def resource_range(self, budget_minutes: float | None, train_size: int) -> tuple[int, int | str]:
        """(the first rung, the most) of the resource the pruner is told of."""
        if self.by_images:
            return self.image_counts(train_size)[0], train_size
        if budget_minutes is not None:
            return rungs_ms(budget_minutes)[0], int(budget_minutes * 60_000)
        return 1, "auto"


FIDELITIES = dict(zip(FIDELITY_HELP, (
    Fidelity("epochs"),
    Fidelity("time", inside_epochs=True),
    Fidelity("images", by_images=True),
), strict=True))
