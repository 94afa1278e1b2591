"""The public surface: everything in ``fungrad.__all__`` is importable from ``fungrad``."""

import fungrad

CORE_NAMES = (
    "mlp",
    "backprop",
    "value_and_grad",
    "per_sample_value_and_grad",
    "Activation",
    "Loss",
    "register_activation",
    "fit",
    "fit_restarts",
    "StopTraining",
    "load_run",
    "Run",
)


def test_every_name_in_all_exists():
    missing = [name for name in fungrad.__all__ if not hasattr(fungrad, name)]
    assert missing == []


def test_all_has_no_duplicates():
    assert len(fungrad.__all__) == len(set(fungrad.__all__))


def test_core_names_are_public():
    for name in CORE_NAMES:
        assert name in fungrad.__all__, name


def test_star_import_gives_the_public_surface():
    namespace: dict = {}
    exec("from fungrad import *", namespace)
    assert set(fungrad.__all__) <= set(namespace)


def test_reexports_are_the_module_objects():
    assert fungrad.value_and_grad is fungrad.backprop.value_and_grad
    assert fungrad.per_sample_value_and_grad is fungrad.backprop.per_sample_value_and_grad
    assert fungrad.Activation is fungrad.activations.Activation
    assert fungrad.Loss is fungrad.losses.Loss
    assert fungrad.register_activation is fungrad.activations.register_activation


def test_training_and_runs_are_reexported():
    assert fungrad.fit is fungrad.train.fit
    assert fungrad.StopTraining is fungrad.train.StopTraining
    assert fungrad.load_run is fungrad.runs.load_run
