import pytest

from index.fusion import rrf


def test_rrf_scores_and_legs():
    fused = rrf({"bm25": [1, 2, 3], "dense": [3, 1]}, k=60)
    by_id = {f.id: f for f in fused}
    assert by_id[1].score == pytest.approx(1 / 61 + 1 / 62)
    assert by_id[3].ranks == {"bm25": 3, "dense": 1}
    assert by_id[2].ranks == {"bm25": 2}
    assert [f.id for f in fused] == [1, 3, 2]


def test_rrf_ignores_repeats_within_a_leg_and_validates_k():
    fused = rrf({"a": [5, 5, 6]})
    assert fused[0].id == 5 and fused[0].ranks == {"a": 1}
    with pytest.raises(ValueError, match="k=0"):
        rrf({"a": [1]}, k=0)
