"""The evaluate stage on fake runtimes: labelled accuracy, agreement without labels, data errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import optismith.models.data as data_module
from optismith.errors import DataError
from optismith.results import Accuracy
from optismith.stages.evaluate import EvaluateStage
from optismith.storage.local import LocalStorage
from tests.stages.fake_runtimes import FakeRuntime, fake_variant, install_fakes, make_run, manifest


@pytest.fixture(autouse=True)
def _fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fakes(monkeypatch)


def _predictions(tmp_path: Path, x: np.ndarray, noise: float) -> np.ndarray:
    _, config = fake_variant("probe", noise=noise)
    path = tmp_path / "probe.json"
    path.write_text(__import__("json").dumps(config))
    session = FakeRuntime.load(path, threads=1)
    return session.run([x])[0].argmax(axis=1)


def _by_name(accuracy: list[Accuracy]) -> dict[str, Accuracy]:
    return {a.variant: a for a in accuracy}


def _variants() -> list:  # type: ignore[type-arg]
    return [fake_variant("tf-savedmodel"), fake_variant("tflite-fp32"), fake_variant("tflite-int8", noise=3.0)]


def test_labelled_data_gives_top1_accuracy_and_its_drop(tmp_path: Path) -> None:
    x = np.random.default_rng(5).random((40, 8, 8, 1)).astype(np.float32)
    y = _predictions(tmp_path, x, 0.0).copy()
    y[:4] = (y[:4] + 1) % 10  # the source model gets exactly these 4 wrong: accuracy 0.9
    np.savez(tmp_path / "eval.npz", x=x, y=y)
    model = manifest(tmp_path, evaluation={"uri": str(tmp_path / "eval.npz")})
    record = EvaluateStage().run(make_run(tmp_path, _variants(), model=model))
    results = _by_name(record.accuracy)
    assert results["tf-savedmodel"].metric == "top1" and results["tf-savedmodel"].labelled
    assert results["tf-savedmodel"].value == pytest.approx(0.9)
    assert results["tf-savedmodel"].drop == 0.0
    assert results["tflite-fp32"].value == pytest.approx(0.9) and results["tflite-fp32"].drop == 0.0
    noisy_accuracy = float(np.mean(_predictions(tmp_path, x, 3.0) == y))
    assert noisy_accuracy < 0.85  # the noise really changes predictions
    assert results["tflite-int8"].value == pytest.approx(noisy_accuracy)
    assert results["tflite-int8"].drop == pytest.approx(0.9 - noisy_accuracy)
    assert results["tflite-int8"].samples == 40 and results["tflite-int8"].target == "cpu"
    numerics = results["tflite-int8"].numerics
    assert numerics is not None and numerics.max_abs_error > 0
    assert record.payload["data"]["labelled"] is True


def test_one_hot_labels_and_the_sample_limit(tmp_path: Path) -> None:
    x = np.random.default_rng(6).random((30, 8, 8, 1)).astype(np.float32)
    y = np.eye(10)[_predictions(tmp_path, x, 0.0)]
    np.savez(tmp_path / "eval.npz", x=x, y=y)
    model = manifest(tmp_path, evaluation={"uri": str(tmp_path / "eval.npz"), "samples": 12})
    results = _by_name(EvaluateStage().run(make_run(tmp_path, _variants()[:2], model=model)).accuracy)
    assert results["tf-savedmodel"].value == 1.0
    assert results["tf-savedmodel"].samples == 12


def test_without_labels_variants_are_compared_with_the_baseline(tmp_path: Path) -> None:
    x = np.random.default_rng(7).random((50, 8, 8, 1)).astype(np.float32)
    np.savez(tmp_path / "eval.npz", x=x)
    model = manifest(tmp_path, evaluation={"uri": str(tmp_path / "eval.npz")})
    record = EvaluateStage().run(make_run(tmp_path, _variants(), model=model))
    results = _by_name(record.accuracy)
    assert results["tflite-fp32"].metric == "agreement" and not results["tflite-fp32"].labelled
    assert results["tflite-fp32"].value == 1.0 and results["tflite-fp32"].drop == 0.0
    expected = float(np.mean(_predictions(tmp_path, x, 3.0) == _predictions(tmp_path, x, 0.0)))
    assert results["tflite-int8"].value == pytest.approx(expected)
    assert results["tflite-int8"].drop == pytest.approx(1.0 - expected)
    assert "agreement" in record.message


def test_without_an_evaluation_uri_the_inspect_samples_are_used(tmp_path: Path) -> None:
    record = EvaluateStage().run(make_run(tmp_path, _variants(), samples=16))
    assert "no evaluation.uri" in record.message
    assert {a.metric for a in record.accuracy} == {"agreement"}
    assert all(a.samples == 16 for a in record.accuracy)


def test_unrunnable_and_failing_variants_are_recorded_not_fatal(tmp_path: Path) -> None:
    variants = [
        fake_variant("tf-savedmodel"),
        fake_variant("openvino-fp32", runtime="fake-missing"),
        fake_variant("tflite-fp16", fail_batches=(16,)),
    ]
    record = EvaluateStage().run(
        make_run(tmp_path, variants, samples=16, model=manifest(tmp_path, benchmark={"batchSizes": [1, 16]}))
    )
    assert "fake-missing not installed" in record.payload["skipped"]["openvino-fp32"]
    assert "not supported" in record.payload["failed"]["tflite-fp16"]
    assert [a.variant for a in record.accuracy] == ["tf-savedmodel"]


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"features": np.zeros((4, 8, 8, 1), np.float32)}, "no array named 'x'"),
        ({"x": np.zeros((4, 8, 8, 1), np.float32), "y": np.zeros(2)}, "different numbers of samples"),
        ({"x": np.zeros((0, 8, 8, 1), np.float32)}, "holds no samples"),
        ({"x": np.zeros((4, 9, 9, 1), np.float32)}, "expects"),
    ],
)
def test_bad_evaluation_data_is_a_data_error(tmp_path: Path, arrays: dict[str, np.ndarray], message: str) -> None:
    np.savez(tmp_path / "eval.npz", **arrays)
    model = manifest(tmp_path, evaluation={"uri": str(tmp_path / "eval.npz")})
    with pytest.raises(DataError, match=message) as error:
        EvaluateStage().run(make_run(tmp_path, _variants()[:1], model=model))
    assert error.value.fix and error.value.where.endswith("eval.npz")


def test_missing_or_corrupt_evaluation_files_are_data_errors(tmp_path: Path) -> None:
    model = manifest(tmp_path, evaluation={"uri": str(tmp_path / "absent.npz")})
    with pytest.raises(DataError, match="no such file"):
        EvaluateStage().run(make_run(tmp_path, _variants()[:1], model=model))
    (tmp_path / "corrupt.npz").write_bytes(b"not a zip")
    model = manifest(tmp_path, evaluation={"uri": str(tmp_path / "corrupt.npz")})
    with pytest.raises(DataError, match=r"not a readable \.npz"):
        EvaluateStage().run(make_run(tmp_path, _variants()[:1], model=model))


def test_remote_evaluation_data_is_downloaded_from_its_parent_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = tmp_path / "bucket" / "data"
    bucket.mkdir(parents=True)
    np.savez(bucket / "eval.npz", x=np.random.default_rng(8).random((8, 8, 8, 1)).astype(np.float32))
    opened: list[str] = []

    def fake_open(uri: str, settings: object = None) -> LocalStorage:
        opened.append(uri)
        return LocalStorage(tmp_path / "bucket" / uri.removeprefix("s3://bucket/"))

    monkeypatch.setattr(data_module, "open_storage", fake_open)
    model = manifest(tmp_path, evaluation={"uri": "s3://bucket/data/eval.npz"})
    record = EvaluateStage().run(make_run(tmp_path, _variants()[:2], model=model))
    assert opened == ["s3://bucket/data"]
    assert all(a.samples == 8 for a in record.accuracy)


def test_dense_agreement_is_named_per_element() -> None:
    from optismith.models.numerics import compare_outputs
    from optismith.stages.evaluate import agreement

    maps = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype(np.float32)
    changed = maps.copy()
    changed[0, 0, 0] = maps[0, 0, 0][::-1] * 10  # one pixel of 32 to another class
    metric, value = agreement(compare_outputs([maps], [changed]))
    expected = 1.0 - float(np.argmax(changed[0, 0, 0]) != np.argmax(maps[0, 0, 0])) / 32
    assert metric == "agreement-per-element" and value == pytest.approx(expected)
