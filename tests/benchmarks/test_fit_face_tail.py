import numpy as np
import pytest

from fit_face_tail import fit_tail, gallery_draws, stranger_cosines


def test_the_fit_recovers_the_tail_it_was_drawn_from():
    rng = np.random.default_rng(0)
    scale, dim = 1.3, 10.0
    distances = scale * rng.uniform(0, 1, 200_000) ** (1 / dim)  # P(d < r) = (r / scale) ** dim
    fitted_scale, fitted_dim = fit_tail(1 - distances**2 / 2, tail=0.05)
    assert fitted_dim == pytest.approx(dim, rel=0.05) and fitted_scale == pytest.approx(scale, rel=0.05)


def test_strangers_are_scored_against_the_drawn_gallery_only():
    people = np.asarray(["a", "a", "b", "b", "c", "c"])
    vectors = np.eye(6)[[0, 0, 1, 1, 2, 2]] * 0.6 + 0.8 * np.eye(6)[5]  # unit rows, one direction per person
    assert sorted(np.round(stranger_cosines(vectors, people), 2)) == [0.64] * 12
    strangers, (own, other) = gallery_draws(vectors, people, enrolled=1, shots=1, draws=5, rng=np.random.default_rng(0))
    assert strangers.shape == (20,) and np.allclose(strangers, 0.64)  # 4 photos of the other two people per draw
    assert np.allclose(own, 1.0) and np.allclose(other, -1.0)  # a gallery of one person: no one else to answer
