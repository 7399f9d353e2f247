"""The spawn form: the hardware tiers a person may choose, in words, as JupyterHub shows them.

A pure function of the tiers (each carries the instance's currency), so that the hub's spawners and the
control plane's preview of the form (what a chosen group would see) render the same page. The
numbers come from the tier's values only: a tier's size is written once, where it is enforced.
"""

import html
from collections.abc import Sequence

from himalia.wire.compute import DescribeTier, TierSpec

_GiB = 2**30
NO_TIER = "No hardware tier is available to you. Ask an administrator."


def _number(value: float) -> str:
    """1 → '1', 0.5 → '0.5', 1.25 → '1.25': what people write, never '1.0'."""
    return f"{round(value, 2):g}"


def cores(count: float) -> str:
    return f"{_number(count)} {'core' if count == 1 else 'cores'}"


def memory(size: int | None) -> str:
    """Memory in Gi (2^30 bytes), the unit tiers are written in."""
    return "no memory limit" if not size else f"{_number(size / _GiB)} Gi memory"


def gpus(count: int) -> str:
    return f"{count} {'GPU' if count == 1 else 'GPUs'}"


def cost(per_hour: float, currency: str) -> str:
    """Money with at least two decimals (0.05, 3.00), more when the rate has them (0.005)."""
    amount = f"{per_hour:.2f}" if round(per_hour, 2) == per_hour else f"{per_hour:g}"
    return f"{amount} {currency} per hour"


def tier_size(tier: TierSpec) -> str:
    """What a workspace on the tier gets at most: '2 cores, 8 Gi memory, 1 GPU'."""
    parts = [cores(tier.cpu_limit or tier.cpu_request), memory(tier.memory_limit or tier.memory_request)]
    if tier.gpus:
        parts.append(gpus(tier.gpus))
    return ", ".join(parts)


def tier_summary(tier: DescribeTier) -> str:
    """The tier's size and price in one line: '1 core, 2 Gi memory, 0.05 USD per hour'."""
    return f"{tier_size(tier)}, {cost(tier.cost_per_hour, tier.currency)}"


def tier_title(tier: DescribeTier) -> str:
    return tier.display_name or tier.name


def tier_label(tier: DescribeTier) -> str:
    """The tier as the hub's pages name a server's: 'Medium (2 cores, 8 Gi memory)'."""
    return f"{tier_title(tier)} ({tier_size(tier)})"


def spawn_form(tiers: Sequence[DescribeTier], chosen: str | None = None) -> str:
    """The form's HTML: one radio button per tier (JupyterHub wraps it in its form and Start button).

    ``chosen`` is preselected when offered (the tier of the server's last start), else the default
    tier, else the first. With no tier, a sentence saying whom to ask.
    """
    if not tiers:
        return f'<p class="alert alert-warning" id="himalia-no-tier">{html.escape(NO_TIER)}</p>'
    names = [tier.name for tier in tiers]
    if chosen not in names:
        chosen = next((tier.name for tier in tiers if tier.default), names[0])
    rows = []
    for tier in tiers:
        checked = " checked" if tier.name == chosen else ""
        description = f"<br><small>{html.escape(tier.description)}</small>" if tier.description else ""
        rows.append(
            '<label class="himalia-tier" style="display:block;margin:0.5em 0">'
            f'<input type="radio" name="tier" value="{html.escape(tier.name)}"{checked}> '
            f"<b>{html.escape(tier_title(tier))}</b> "
            f'<small class="himalia-tier-size">({html.escape(tier_summary(tier))})</small>'
            f"{description}</label>"
        )
    return '<fieldset id="himalia-tiers"><legend>Hardware tier</legend>' + "".join(rows) + "</fieldset>"
