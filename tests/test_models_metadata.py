"""Every model card's params/MACs against its paper's table, and the registry's behaviour."""

from __future__ import annotations

import pytest

import litevision as lv
from litevision.bench.model_table import measure_model
from litevision.models import get_model_card

CHECKED = [n for n in lv.list_models() if get_model_card(n).figures.complexity_tol is not None]


def _params(names: list[str]) -> list:
    heavy = lambda n: (get_model_card(n).figures.macs_g or 0) > 4.0  # noqa: E731
    return [pytest.param(n, marks=pytest.mark.slow) if heavy(n) else n for n in names]


@pytest.mark.parametrize("name", _params(CHECKED))
def test_params_and_macs_match_paper(name: str) -> None:
    card = get_model_card(name)
    row = measure_model(name)
    tol, paper = card.figures.complexity_tol, card.figures
    if paper.params_m:
        assert abs(row.params_diff_pct) <= 100 * tol, f"params {row.params_m:.3f}M vs paper {paper.params_m}M"
    if paper.macs_g:
        assert abs(row.macs_diff_pct) <= 100 * tol, f"MACs {row.macs_g:.4f}G vs paper {paper.macs_g}G"


@pytest.mark.parametrize("name", lv.list_models())
def test_card_is_complete(name: str) -> None:
    card = get_model_card(name)
    assert card.paper.title and card.family
    data = card.data_config
    assert len(data.mean) == len(data.std) == data.in_chans or card.extra.get("fixed_in_chans")
    if card.figures.complexity_tol is None:
        assert card.notes, "a card that cannot match its paper must say why in notes"


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(KeyError, match="Did you mean"):
        lv.create_model("mobilenetv2_10")


def test_duplicate_registration_raises() -> None:
    from litevision.models import register_model

    name = lv.list_models()[0]
    with pytest.raises(ValueError, match="already registered"):
        register_model(name, lambda **kw: None, get_model_card(name))
