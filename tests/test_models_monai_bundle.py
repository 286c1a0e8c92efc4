"""MonaiBundleModel on tiny bundles written here, run by MONAI's bundle API on a synthetic CT.

Each bundle's network is small enough that the expected output can be computed with
numpy from the same volume: a classifier on the mean scaled intensity, and a 1x1x1
convolution that segments voxels above 150.5 HU. The tests check the adapter's numbers
against those, so they show the weights were loaded and the conventions (probabilities,
volumes in mL, centroids in LPS) hold. Slow: importing MONAI takes seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gai_research.models.errors import ModelConfigError, ModelInputError
from gai_research.models.inputs import study_input_from_files
from gai_research.models.types import ModelInfo, Origin, StudyInput, TaskKind

pytestmark = pytest.mark.slow

HU_MIN, HU_MAX = -1000.0, 400.0
THRESHOLD_HU = 150.5  # between integer HU values: no voxel sits on the boundary
SCALE = {
    "_target_": "ScaleIntensityRanged",
    "keys": "image",
    "a_min": HU_MIN,
    "a_max": HU_MAX,
    "b_min": 0.0,
    "b_max": 1.0,
    "clip": True,
}
LOAD = [
    {"_target_": "LoadImaged", "keys": "image"},
    {"_target_": "EnsureChannelFirstd", "keys": "image"},
]
CLASSIFIER = "$torch.nn.Sequential(torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(), torch.nn.Linear(1, {n}))"
CLASSIFIER_2D = (
    "$torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(1, 2))"
)
SEGMENTER = "$torch.nn.Conv3d(1, 2, kernel_size=1)"
DX_MAX = 4095.0
W, B = 4.0, -2.0  # classifier: positive logit = W * mean + B (negative logit = -it, when 2)
K = 50.0  # segmenter: foreground logit = K * (scaled - threshold)


def info(kind: TaskKind = TaskKind.CLASSIFICATION, modality: str = "CT") -> ModelInfo:
    return ModelInfo(
        name="bundle-under-test",
        vendor="gai-research tests",
        version="0.1.0",
        task="stroke_ct" if modality == "CT" else "lung_nodule_dx",
        kind=kind,
        origin=Origin.BASELINE,
        modalities=(modality,),
    )


def write_bundle(
    root: Path,
    *,
    network: str,
    net,
    outputs: dict,
    pre: list,
    post: list | None = None,
    spatial_shape: list[int] | None = None,
) -> Path:
    """A bundle folder: configs/metadata.json, configs/inference.json, models/model.pt."""
    import torch

    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    metadata = {
        "version": "0.1.0",
        "monai_version": "1.6.1",
        "network_data_format": {
            "inputs": {
                "image": {
                    "type": "image",
                    "num_channels": 1,
                    "spatial_shape": spatial_shape or [96, 96, 96],
                }
            },
            "outputs": {"pred": outputs},
        },
    }
    config = {
        "bundle_root": ".",
        "device": "$torch.device('cuda' if torch.cuda.is_available() else 'cpu')",
        "network_def": network,
        "preprocessing": {"_target_": "Compose", "transforms": pre},
        "inferer": {"_target_": "SimpleInferer"},
    }
    if post is not None:
        config["postprocessing"] = {"_target_": "Compose", "transforms": post}
    (root / "configs" / "metadata.json").write_text(json.dumps(metadata))
    (root / "configs" / "inference.json").write_text(json.dumps(config))
    torch.save(net.state_dict(), root / "models" / "model.pt")
    return root


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, StudyInput]:
    from gai_research.synth import generate_cohort

    cohort = generate_cohort(tmp_path_factory.mktemp("bundle-synth") / "c", patients=1, seed=5)
    return {
        s.task: study_input_from_files(
            sorted((cohort.out_dir / s.site / s.study_uid).rglob("*.dcm"))
        )
        for s in cohort.studies
    }


@pytest.fixture(scope="module")
def ct(studies) -> StudyInput:
    return studies["stroke_ct"]


@pytest.fixture(scope="module")
def hu(ct: StudyInput):
    """The CT as the adapter reads it (RAS), float64."""
    volume = ct.series[0].read(space="RAS")
    return volume, volume.array.astype(np.float64)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch

    root = tmp_path_factory.mktemp("bundles")
    out = {}
    for n in (1, 2):
        net = torch.nn.Sequential(
            torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(), torch.nn.Linear(1, n)
        )
        with torch.no_grad():
            net[2].weight[:] = torch.tensor([[W]] if n == 1 else [[-W], [W]])
            net[2].bias[:] = torch.tensor([B] if n == 1 else [-B, B])
        names = {"0": "positive"} if n == 1 else {"0": "negative", "1": "positive"}
        out[f"classifier-{n}"] = write_bundle(
            root / f"classifier-{n}",
            network=CLASSIFIER.format(n=n),
            net=net,
            outputs={"type": "probabilities", "format": "classification", "channel_def": names},
            pre=[SCALE],
        )
    seg = torch.nn.Conv3d(1, 2, kernel_size=1)
    threshold = (THRESHOLD_HU - HU_MIN) / (HU_MAX - HU_MIN)
    with torch.no_grad():
        seg.weight.zero_()
        seg.bias.zero_()
        seg.weight[1, 0, 0, 0, 0] = K
        seg.bias[1] = -K * threshold
    outputs = {
        "type": "image",
        "format": "segmentation",
        "channel_def": {"0": "background", "1": "hemorrhage"},
    }
    argmax = [{"_target_": "AsDiscreted", "keys": "pred", "argmax": True}]
    for name, pre, post in (
        ("segmenter", [SCALE], None),
        ("segmenter-nifti", [*LOAD, SCALE], None),
        ("segmenter-labelmap", [SCALE], argmax),
    ):
        out[name] = write_bundle(
            root / name, network=SEGMENTER, net=seg, outputs=outputs, pre=pre, post=post
        )
    net2d = torch.nn.Sequential(
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(1, 2)
    )
    with torch.no_grad():
        net2d[2].weight[:] = torch.tensor([[-W], [W]])
        net2d[2].bias[:] = torch.tensor([-B, B])
    out["classifier-2d"] = write_bundle(
        root / "classifier-2d",
        network=CLASSIFIER_2D,
        net=net2d,
        outputs={"type": "probabilities", "format": "classification"},
        pre=[{**SCALE, "a_min": 0.0, "a_max": DX_MAX}],
        spatial_shape=[512, 512],
    )
    return out


@pytest.mark.parametrize("channels", [1, 2])
def test_a_classifier_bundle_gives_the_probability_its_weights_imply(channels, bundles, ct, hu):
    from gai_research.models.adapters.monai_bundle import MonaiBundleModel

    _, array = hu
    mean = np.clip((array - HU_MIN) / (HU_MAX - HU_MIN), 0, 1).mean()
    want = (
        1 / (1 + np.exp(-2 * (W * mean + B)))
        if channels == 2
        else 1 / (1 + np.exp(-(W * mean + B)))
    )
    model = MonaiBundleModel(info(), bundle_dir=bundles[f"classifier-{channels}"])
    try:
        got = model.predict(ct)
    finally:
        model.close()
    assert got.study_uid == ct.study_uid
    assert got.score == pytest.approx(want, abs=1e-5)
    assert got.scores["positive"] == pytest.approx(want, abs=1e-5)
    assert got.raw["output_shape"] == [channels] and got.raw["activation_applied"]
    assert got.timing["inference_s"] > 0 and got.findings == () and got.volumes == ()


@pytest.mark.parametrize(
    ("bundle", "options"),
    [
        ("segmenter", {}),
        ("segmenter-nifti", {"input_format": "nifti"}),
        ("segmenter-labelmap", {}),
    ],
)
def test_a_segmentation_bundle_gives_volume_and_location(bundle, options, bundles, ct, hu):
    from gai_research.models.adapters.monai_bundle import MonaiBundleModel

    volume, array = hu
    mask = array > THRESHOLD_HU
    voxel_mm3 = abs(np.linalg.det(volume.affine[:3, :3]))
    want_ml = mask.sum() * voxel_mm3 / 1000
    want_lps = volume.voxel_to_world(np.argwhere(mask).mean(axis=0), space="LPS")
    model = MonaiBundleModel(info(TaskKind.TRIAGE), bundle_dir=bundles[bundle], **options)
    try:
        got = model.predict(ct)
    finally:
        model.close()
    assert mask.any() and got.volume("hemorrhage") == pytest.approx(want_ml, rel=1e-6)
    (finding,) = got.findings
    assert finding.label == "hemorrhage" and finding.series_uid == ct.series[0].series_uid
    assert [finding.x_mm, finding.y_mm, finding.z_mm] == pytest.approx(want_lps.tolist(), abs=1e-3)
    assert finding.diameter_mm == pytest.approx((6 * want_ml * 1000 / np.pi) ** (1 / 3), rel=1e-6)
    assert 0.5 < got.score <= 1.0 and got.raw["voxels"] == {"hemorrhage": int(mask.sum())}
    if bundle == "segmenter-labelmap":  # argmax'd in postprocessing: a label map, no probability
        assert got.raw["output_shape"] == [1, *array.shape] and got.score == 1.0


def test_a_2d_classifier_bundle_reads_a_projection_image(bundles, studies) -> None:
    from gai_research.models.adapters.monai_bundle import MonaiBundleModel

    dx = studies["lung_nodule_dx"]
    image = dx.series[0].read(space="RAS").array.astype(np.float64)
    mean = np.clip(image / DX_MAX, 0, 1).mean()
    model = MonaiBundleModel(info(modality="DX"), bundle_dir=bundles["classifier-2d"])
    assert model.spatial_dims == 2
    try:
        got = model.predict(dx)
    finally:
        model.close()
    assert got.score == pytest.approx(1 / (1 + np.exp(-2 * (W * mean + B))), abs=1e-5)
    assert set(got.scores) == {"class_0", "class_1"}


def test_a_study_without_the_modality_is_an_input_error(bundles, ct) -> None:
    from gai_research.models.adapters.monai_bundle import MonaiBundleModel

    mr_only = ModelInfo(**{**info().to_dict(), "modalities": ("MR",)})
    model = MonaiBundleModel(mr_only, bundle_dir=bundles["classifier-2"], preload=False)
    with pytest.raises(ModelInputError, match="has no MR series"):
        model.predict(ct)
    model.close()


def test_weights_that_do_not_fit_are_a_config_error(bundles, tmp_path: Path) -> None:
    import shutil

    from gai_research.models.adapters.monai_bundle import MonaiBundleModel

    broken = tmp_path / "broken"
    shutil.copytree(bundles["classifier-2"], broken)
    shutil.copy(bundles["segmenter"] / "models" / "model.pt", broken / "models" / "model.pt")
    with pytest.raises(ModelConfigError, match="weights do not load into network_def"):
        MonaiBundleModel(info(), bundle_dir=broken)


@pytest.mark.parametrize(
    ("remove", "problem"),
    [
        ("configs/metadata.json", "no metadata file"),
        ("configs/inference.json", "no config 'inference' file"),
        ("models/model.pt", "no weights file"),
    ],
)
def test_an_incomplete_bundle_is_a_config_error(remove, problem, bundles, tmp_path: Path) -> None:
    import shutil

    from gai_research.models.adapters.monai_bundle import MonaiBundleModel

    copy = tmp_path / "bundle"
    shutil.copytree(bundles["classifier-2"], copy)
    (copy / remove).unlink()
    with pytest.raises(ModelConfigError, match=problem):
        MonaiBundleModel(info(), bundle_dir=copy)
