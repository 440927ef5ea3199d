"""The global batch a user states and the accumulation derived from it."""

from __future__ import annotations

import pytest

from magicoder.training.global_batch import gradient_accumulation


@pytest.mark.parametrize(
    ("micro", "devices", "nodes", "expected"),
    [(2, 2, 1, 128), (2, 8, 2, 16), (8, 1, 1, 64), (512, 1, 1, 1)],
)
def test_the_paper_global_batch_of_512_on_several_layouts(micro, devices, nodes, expected):
    assert gradient_accumulation(512, micro, devices, nodes) == expected


def test_a_global_batch_that_does_not_divide_names_the_numbers_and_the_fix():
    with pytest.raises(ValueError, match=r"global_batch_size=500 .* = 12; use 492 or 504"):
        gradient_accumulation(500, 2, 3, 2)


def test_a_global_batch_below_one_step_is_refused():
    with pytest.raises(ValueError, match=r"not a multiple .* use 16 or 32"):
        gradient_accumulation(8, 4, 4, 1)
