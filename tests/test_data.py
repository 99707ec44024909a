"""flatref.data: the digits' fixed split, its scaling, one-hot labels, and the missing extra."""

import builtins

import numpy as np
import pytest

from flatref.data import N_DIGITS, load_digits_split, one_hot
from flatref.errors import MissingExtraError


def test_one_hot_without_scikit_learn():
    y = one_hot(np.array([0, 9, 3]))
    assert y.shape == (3, 10) and y.sum(axis=1).tolist() == [1.0] * 3 and y.argmax(axis=1).tolist() == [0, 9, 3]
    assert one_hot([], K=4).shape == (0, 4)
    with pytest.raises(TypeError, match="integer classes"):
        one_hot([0.5, 1.0])
    with pytest.raises(ValueError, match=r"integers in \[0, 10\)"):
        one_hot([-1, 2])


def test_the_missing_extra_is_named(monkeypatch):
    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name == "sklearn" or name.startswith("sklearn."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(MissingExtraError, match=r"pip install 'flatref\[data\]'") as info:
        load_digits_split()
    assert isinstance(info.value, ImportError) and info.value.name == "sklearn"


@pytest.mark.parametrize("kwargs, error", [({"n_train": 0}, ValueError), ({"n_train": N_DIGITS}, ValueError),
                                           ({"n_train": 2.5}, TypeError), ({"seed": -1}, ValueError)])  # fmt: skip
def test_bad_arguments_are_named_before_loading(kwargs, error, monkeypatch):
    monkeypatch.setattr("flatref.data.import_sklearn_digits", lambda: pytest.fail("loaded before checking"))
    with pytest.raises(error, match=next(iter(kwargs))):
        load_digits_split(**kwargs)


class TestTheSplit:
    @pytest.fixture(scope="class")
    def digits(self):
        pytest.importorskip("sklearn")
        return load_digits_split()

    def test_shapes_and_types(self, digits):
        assert digits.train_inputs.shape == (256, 64) and digits.test_inputs.shape == (1541, 64)
        assert digits.train_labels.shape == (256,) and digits.test_labels.shape == (1541,)
        assert digits.train_labels.dtype.kind == "i" and digits.n_train == 256 and digits.n_test == 1541
        assert set(np.unique(digits.train_labels)) == set(range(10))  # every class in the training set
        assert not digits.train_inputs.flags.writeable and not digits.test_labels.flags.writeable

    def test_disjoint_and_complete(self, digits):
        both = np.concatenate([digits.train_index, digits.test_index])
        assert np.array_equal(np.sort(both), np.arange(N_DIGITS))

    def test_scaling_pixels_over_16_centred_by_the_training_mean(self, digits):
        from sklearn.datasets import load_digits

        raw = load_digits().data / 16.0
        assert np.allclose(digits.mean, raw[digits.train_index].mean(axis=0))
        assert np.allclose(digits.train_inputs, raw[digits.train_index] - digits.mean)
        assert np.allclose(digits.test_inputs, raw[digits.test_index] - digits.mean)  # the training mean
        assert np.abs(digits.train_inputs.mean(axis=0)).max() < 1e-15
        assert np.abs(digits.test_inputs.mean(axis=0)).max() > 1e-3
        assert digits.train_inputs.min() >= -1.0 and digits.train_inputs.max() <= 1.0

    def test_deterministic_and_seeded(self, digits):
        again = load_digits_split()
        for name in ("train_inputs", "train_labels", "test_inputs", "test_labels"):
            assert getattr(again, name).tobytes() == getattr(digits, name).tobytes()
        other = load_digits_split(n_train=256, seed=1)
        assert not np.array_equal(other.train_index, digits.train_index)
        small = load_digits_split(n_train=64)
        assert small.train_inputs.shape == (64, 64) and small.test_inputs.shape == (N_DIGITS - 64, 64)
        assert np.array_equal(np.sort(small.train_index), np.sort(np.random.default_rng(0).permutation(N_DIGITS)[:64]))
