"""Ordering a series' slices: along the normal (a volume), else by index (a sequence)."""

from __future__ import annotations

from obelisk.core.slices import Slice, normal_of, order_slices, parse_vector

AXIAL = normal_of("1\\0\\0\\0\\1\\0")


def test_normal_is_the_cross_product_of_the_cosines() -> None:
    assert AXIAL == (0.0, 0.0, 1.0)
    assert normal_of("1\\0\\0\\0\\0\\-1") == (0.0, 1.0, 0.0)
    assert normal_of("1\\0\\0") is None and normal_of(None) is None


def test_parse_vector_wants_exactly_the_size() -> None:
    assert parse_vector("1\\2.5\\-3", 3) == (1.0, 2.5, -3.0)
    assert parse_vector("1\\2", 3) is None
    assert parse_vector("1\\x\\3", 3) is None


def test_positions_make_a_volume_sorted_along_the_normal() -> None:
    slices = [Slice(name, (0, 0, z), index) for name, z, index in [("b", 5, 1), ("a", -5, 2)]]
    ordered, is_volume = order_slices(slices, AXIAL) or ([], False)
    assert [s.public_id for s in ordered] == ["a", "b"] and is_volume


def test_same_position_falls_back_to_the_index_in_series() -> None:
    slices = [Slice("b", (0, 0, 1), 2), Slice("a", (0, 0, 1), 1)]
    ordered, is_volume = order_slices(slices, AXIAL) or ([], True)
    assert [s.public_id for s in ordered] == ["a", "b"] and not is_volume


def test_one_instance_is_a_sequence_and_nothing_known_cannot_be_ordered() -> None:
    assert order_slices([Slice("a", None, None)], None) == ([Slice("a", None, None)], False)
    assert order_slices([Slice("a", None, None), Slice("b", None, 1)], AXIAL) is None
