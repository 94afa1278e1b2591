"""``fungrad.runs``: a saved run predicts on raw rows exactly as the model it holds."""

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fungrad
from fungrad import checkpoint, data, mlp, optim, runs

FEATURES = ["sepal length", "sepal width", "petal length", "petal width"]
SPECIES = ["setosa", "versicolor", "virginica"]


def blobs(n=150, seed=0):
    """Three Gaussian blobs in 4-D, raw (unstandardised) values, and their class indices."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    centres = np.array([[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.5, 2.0]])
    x = centres[y] + rng.normal(scale=0.3, size=(n, 4))
    return x.astype(np.float32), y


def command_line_run(folder, x_raw, targets, *, loss, sizes, classes, task, target=None,
                     features=FEATURES, label_column="species", data_source="train.csv"):  # fmt: skip
    """Train a tiny MLP on standardised rows and save it as ``fungrad train`` would."""
    standardize = data.fit_standardizer(x_raw)
    params = mlp.init(jax.random.key(0), sizes)
    result = fungrad.fit(params, standardize(x_raw), targets, loss=loss, epochs=20,
                         optimizer=optim.momentum(0.05, 0.9), key=jax.random.key(1),
                         batch_size=16)  # fmt: skip
    model = {"model": "mlp", "sizes": sizes, "activation": "relu",
             "output_activation": "identity", "loss": loss, "gradients": "backprop"}  # fmt: skip
    config = {
        "format": "fungrad-run", "data": data_source, "labels": None,
        "label_column": label_column, "validation": 0.0, "test": 0.0, "standardize": True,
        "dtype": "float32", "seed": 0, "sizes": sizes, "runs": 1, "best_run": 0,
        "loss": loss, "fit": {**model, "batch_size": 16, "epochs": 20, "keep_best": None},
        "preprocessing": {
            "features": features, "n_features": sizes[0],
            "standardize": {"mean": standardize.mean.tolist(), "std": standardize.std.tolist()},
            "task": task, "classes": classes, "target": target,
        },
    }  # fmt: skip
    checkpoint.save(folder / "checkpoint.npz", result.state, config=config,
                    history=result.history)  # fmt: skip
    return result.params, standardize


@pytest.fixture(scope="module")
def species_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("species")
    x, y = blobs()
    params, standardize = command_line_run(
        folder, x, y, loss="softmax_cross_entropy", sizes=[4, 8, 3], classes=SPECIES,
        task="classification",
    )  # fmt: skip
    return folder, params, standardize


@pytest.mark.slow
def test_text_classes_predict_as_the_model_in_process(species_run):
    folder, params, standardize = species_run
    x, y = blobs(60, seed=1)
    run = runs.load_run(folder)
    logits = np.asarray(mlp.apply(params, standardize(x)))
    expected = np.array(SPECIES)[logits.argmax(axis=1)]
    predicted = run.predict(x)
    assert predicted.tolist() == expected.tolist()
    assert (predicted == np.array(SPECIES)[y]).mean() > 0.9
    scores = run.predict_scores(x)
    np.testing.assert_allclose(scores, np.asarray(jax.nn.softmax(logits)), rtol=1e-6)
    np.testing.assert_allclose(scores.sum(axis=1), 1, rtol=1e-6)
    assert run.classes == SPECIES and run.features == FEATURES and run.task == "classification"


@pytest.mark.slow
def test_one_row_gives_one_value(species_run):
    run = runs.load_run(species_run[0])
    x, _ = blobs(5, seed=2)
    assert run.predict(x[3]) == run.predict(x)[3]
    assert np.ndim(run.predict(x[3])) == 0 and isinstance(run.predict(x[3]).item(), str)
    assert run.predict_scores(x[3]).shape == (3,)
    assert run.predict(x[3].tolist()) == run.predict(x)[3]
    assert run.evaluate(x[3], "virginica") == run.evaluate(x[3:4], ["virginica"])


@pytest.mark.slow
def test_integer_classes_with_a_sigmoid_output(tmp_path):
    x, index = blobs(120)
    keep = index < 2
    x, index = x[keep], index[keep]
    params, standardize = command_line_run(
        tmp_path, x, index.astype(np.float32)[:, None], loss="sigmoid_binary_cross_entropy",
        sizes=[4, 6, 1], classes=[-1, 1], task="classification", features=None, label_column="-1",
    )  # fmt: skip
    run = runs.load_run(tmp_path)
    logits = np.asarray(mlp.apply(params, standardize(x)))[:, 0]
    predicted = run.predict(x)
    assert predicted.dtype.kind == "i"
    assert predicted.tolist() == np.where(logits > 0, 1, -1).tolist()
    p = np.asarray(jax.nn.sigmoid(logits))
    np.testing.assert_allclose(
        run.predict_scores(x), np.stack([1 - p, p], axis=1), rtol=1e-5, atol=1e-7
    )
    figures = run.evaluate(x, np.where(index == 1, 1, -1))
    assert figures == fungrad.evaluate(
        params, standardize(x), index, loss="sigmoid_binary_cross_entropy"
    )


@pytest.mark.slow
def test_regression_undoes_the_target_scaling(tmp_path):
    x, _ = blobs(90)
    y = (3.0 * x[:, 0] - x[:, 2] + 40.0).astype(np.float32)
    mean, std = np.float32(y.mean()), np.float32(y.std())
    scaled = (y - mean) / std
    target = {"mean": [float(mean)], "std": [float(std)]}
    params, standardize = command_line_run(
        tmp_path, x, scaled, loss="l2", sizes=[4, 8, 1], classes=None, task="regression",
        target=target,
    )  # fmt: skip
    run = runs.load_run(tmp_path)
    outputs = np.asarray(mlp.apply(params, standardize(x)))[:, 0]
    np.testing.assert_allclose(run.predict(x), outputs * std + mean, rtol=1e-6)
    assert run.predict(x).shape == (90,) and run.predict_scores(x).shape == (90, 1)
    figures = run.evaluate(x, y)
    assert set(figures) == {"loss", "rmse", "mae"}
    error = (outputs * std + mean).astype(np.float64) - y
    assert figures["rmse"] == pytest.approx(np.sqrt(np.mean(error**2)), rel=1e-5)
    assert figures["mae"] == pytest.approx(np.mean(np.abs(error)), rel=1e-5)
    assert figures["loss"] == fungrad.evaluate(params, standardize(x), scaled, loss="l2")["loss"]


@pytest.mark.slow
def test_many_rows_run_in_chunks_equal_to_one_call(species_run, count_compilations):
    folder, params, standardize = species_run
    run = runs.load_run(folder)
    x = np.random.default_rng(3).normal(5, 1.5, size=(20000, 4)).astype(np.float32)
    scores = run.predict_scores(x)
    logits = mlp.apply(params, jnp.asarray(standardize(x)))
    np.testing.assert_allclose(scores, np.asarray(jax.nn.softmax(logits)), rtol=1e-6, atol=1e-7)
    assert run.predict(x).tolist() == np.array(SPECIES)[np.argmax(logits, axis=1)].tolist()
    run.predict(x[:100])
    with count_compilations() as compiled:
        run.predict(x[:120])  # padded to the same 128 rows: nothing compiles again
        run.predict(x[: runs.CHUNK + 5])  # two chunks of the size already compiled
    assert compiled == []


@pytest.mark.slow
def test_preprocess_checks_the_width_and_values(species_run):
    run = runs.load_run(species_run[0])
    with pytest.raises(
        ValueError, match=r"^x: expected 4 features \(the training data's\), got 3$"
    ):
        run.preprocess(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"^x: row 1 contains NaN"):
        run.predict(np.array([[1.0, 2, 3, 4], [np.nan, 1, 1, 1]]))
    with pytest.raises(TypeError, match="x: expected numeric"):
        run.predict([["a", "b", "c", "d"]])
    standardize = species_run[2]
    x = blobs(4)[0]
    np.testing.assert_array_equal(run.preprocess(x), standardize(x))


@pytest.mark.slow
def test_evaluate_maps_labels_and_names_an_unknown_one(species_run):
    folder, params, standardize = species_run
    run = runs.load_run(folder)
    x, y = blobs(30, seed=4)
    figures = run.evaluate(x, np.array(SPECIES)[y])
    assert figures == fungrad.evaluate(params, standardize(x), y, loss="softmax_cross_entropy")
    labels = np.array(SPECIES + ["daisy"])[np.minimum(y + (np.arange(30) == 7) * 3, 3)]
    with pytest.raises(ValueError, match=r"^y: label 'daisy' is not one of the run's classes"):
        run.evaluate(x, labels)


@pytest.mark.slow
def test_python_api_checkpoint_predicts_with_the_best_epoch(tmp_path):
    x, y = blobs(90)
    path = tmp_path / "fit.npz"
    result = fungrad.fit(mlp.init(jax.random.key(0), [4, 8, 3]), x, y,
                         loss="softmax_cross_entropy", optimizer=optim.sgd(0.05), epochs=6,
                         key=jax.random.key(1), validation=(x[:30], y[:30]),
                         keep_best="val_loss", checkpoint=path)  # fmt: skip
    run = runs.load_run(path)
    assert run.best_epoch == result.best_epoch
    jax.tree.map(np.testing.assert_array_equal, run.params, result.params)
    jax.tree.map(np.testing.assert_array_equal, run.last_params, result.state.params)
    np.testing.assert_array_equal(run.history["val_loss"], result.history["val_loss"])
    assert run.classes == [0, 1, 2] and run.features is None
    expected = np.argmax(np.asarray(mlp.apply(result.params, x)), axis=1)
    np.testing.assert_array_equal(run.predict(x), expected)
    assert run.evaluate(x, y) == fungrad.evaluate(result.params, x, y, loss="softmax_cross_entropy")


@pytest.mark.slow
def test_restarts_checkpoint_predicts_with_the_best_run(tmp_path):
    x, y = blobs(60)
    path = tmp_path / "restarts.npz"
    starts = [mlp.init(jax.random.key(k), [4, 5, 3]) for k in range(3)]
    result = fungrad.fit_restarts(starts, x, y, loss="softmax_cross_entropy",
                                  optimizer=optim.sgd, learning_rates=[0.001, 0.05, 0.2],
                                  epochs=4, key=jax.random.key(1), keep_best="loss",
                                  checkpoint=path)  # fmt: skip
    run = runs.load_run(path)
    jax.tree.map(np.testing.assert_array_equal, run.params, result.best_params)
    best = result.best_index
    assert run.best_epoch == int(result.best_epochs[best])
    np.testing.assert_array_equal(run.history["loss"], result.history["loss"][best, :4])


def test_errors_name_the_path(tmp_path):
    with pytest.raises(checkpoint.CheckpointNotFoundError, match="nowhere: no such run folder"):
        runs.load_run(tmp_path / "nowhere")
    with pytest.raises(
        checkpoint.CheckpointError, match="not a run folder: it holds no checkpoint"
    ):
        runs.load_run(tmp_path)
    params = mlp.init(jax.random.key(0), [2, 2])
    state = fungrad.TrainState(params, None, jnp.zeros((), jnp.int32), jax.random.key(0))
    custom = checkpoint.save(tmp_path / "custom.npz", state, config={"learning_rate": 0.1})
    with pytest.raises(
        checkpoint.CheckpointError, match=r"custom.npz: the checkpoint has no model"
    ):
        runs.load_run(custom)
    other = checkpoint.save(tmp_path / "other.npz", state, config={"fit": {"model": "custom"}})
    with pytest.raises(checkpoint.CheckpointError, match="records no input width to predict on"):
        runs.load_run(other)


# --------------------------------------------------------------------------- reading rows


def write_csv(path, header, rows):
    lines = ([",".join(header)] if header else []) + [",".join(map(str, row)) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def named_rows(tmp_path, header, rows):
    file = write_csv(tmp_path / "rows.csv", header, rows)
    return data.load_rows(file, label_column="species", features=FEATURES, n_features=4)


def test_named_columns_are_put_in_the_training_order(tmp_path):
    header = ["petal width", "species", "sepal length", "petal length", "sepal width"]
    x, y = named_rows(
        tmp_path, header, [[0.2, "setosa", 5.1, 1.4, 3.5], [1.3, "virginica", 6, 4, 3]]
    )
    np.testing.assert_array_equal(x, np.array([[5.1, 3.5, 1.4, 0.2], [6, 3, 4, 1.3]], np.float32))
    assert y.tolist() == ["setosa", "virginica"]
    x, y = named_rows(tmp_path, header[:1] + header[2:], [[0.2, 5.1, 1.4, 3.5]])
    assert y is None
    np.testing.assert_array_equal(x, np.array([[5.1, 3.5, 1.4, 0.2]], np.float32))


@pytest.mark.parametrize(
    "header, message",
    [
        (FEATURES[:3], r"missing feature columns: petal width \("),
        ([*FEATURES, "colour"], r"unexpected columns: colour \("),
        ([*FEATURES[:3], "petal_width"], r"missing feature columns: petal width; unexpected "
         r"columns: petal_width \(the run was trained on sepal length, "),
        (["1", "2", "3", "4"], r"line 1: expected a header row naming the columns"),
    ],
)  # fmt: skip
def test_named_columns_missing_extra_or_misnamed_are_one_line(tmp_path, header, message):
    with pytest.raises(ValueError, match=r"^\S*rows.csv: " + message):
        named_rows(tmp_path, header, [[1] * len(header)])


def test_unnamed_rows_with_or_without_the_label(tmp_path):
    file = write_csv(tmp_path / "plain.csv", None, [[1, 2, 3, -1], [4, 5, 6, 1]])
    x, y = data.load_rows(file, label_column=-1, n_features=3)
    assert x.tolist() == [[1, 2, 3], [4, 5, 6]] and y.tolist() == [-1, 1] and y.dtype == np.int64
    x, y = data.load_rows(file, label_column=0, n_features=4)
    assert y is None and x.shape == (2, 4)
    x, y = data.load_rows(file, label_column=0, n_features=3)
    assert x.tolist() == [[2, 3, -1], [5, 6, 1]] and y.tolist() == [1, 4]
    with pytest.raises(
        ValueError,
        match=r"plain.csv: expected 3 fields per row like the training file, or 2 without the label column, got 4",
    ):
        data.load_rows(file, label_column=-1, n_features=2)


@pytest.mark.parametrize(
    "rows, message",
    [
        ([[1, 2, 3], [4, "five", 6]], r"line 2, column index 1: expected a number, got 'five'"),
        ([[1, 2, 3], [4, 5]], r"line 2: expected 3 fields like the first row, got 2"),
    ],
)
def test_bad_rows_name_the_file_and_line(tmp_path, rows, message):
    file = write_csv(tmp_path / "bad.csv", None, rows)
    with pytest.raises(ValueError, match=r"^\S*bad.csv: " + message):
        data.load_rows(file, label_column=-1, n_features=3)


def test_npz_idx_and_bundled_rows(tmp_path):
    np.savez(tmp_path / "x.npz", x=np.ones((3, 2, 2), np.uint8))
    x, y = data.load_rows(tmp_path / "x.npz", n_features=4)
    assert x.shape == (3, 4) and x.dtype == np.float32 and y is None
    with pytest.raises(ValueError, match=r"x.npz: expected 5 features per row .* got 4"):
        data.load_rows(tmp_path / "x.npz", n_features=5)
    x, y = data.load_rows("digits", n_features=64)
    assert x.shape == (1797, 64) and y.tolist()[:3] == [0, 1, 2]
    images, labels = tmp_path / "images.idx", tmp_path / "labels.idx"
    images.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, *range(8)]))
    labels.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 3]))
    x, y = data.load_rows(images, labels=labels, n_features=4)
    assert x.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]] and y.tolist() == [7, 3]
    x, y = data.load_rows(images, n_features=4)
    assert y is None and x.shape == (2, 4)


@pytest.mark.slow
def test_the_using_a_trained_model_page_runs():
    page = Path(__file__).resolve().parent.parent / "docs" / "using-a-trained-model.md"
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.DOTALL | re.MULTILINE)
    assert blocks
    for block in blocks:
        exec(compile(block, str(page), "exec"), {"__name__": "using_a_trained_model"})
