"""A local MONAI bundle as a :class:`~gai_research.models.types.Model`, run on CPU.

A bundle is a folder (the MONAI Bundle specification)::

    BUNDLE/configs/metadata.json          version, network_data_format (inputs/outputs)
    BUNDLE/configs/inference.json|yaml    network_def, optional preprocessing, inferer,
                                          postprocessing
    BUNDLE/models/model.pt                the network's state dict (or models/model.ts)

The adapter reads the configs with ``monai.bundle.ConfigParser`` (``bundle_root``,
``device`` and ``output_dir`` overridden), builds ``network_def``, loads the weights and
runs, per study, the same steps a bundle's evaluator runs on one item, in-process:

1. the study's largest series of the model's modalities is read with
   :meth:`SeriesHandle.read` (RAS, MONAI's convention) and handed to ``preprocessing``
   as ``{"image": MetaTensor (1, X, Y, Z)}`` (``input_format="tensor"``), or as
   ``{"image": "/tmp/.../image.nii.gz"}`` (``input_format="nifti"``) for bundles whose
   preprocessing starts with ``LoadImaged`` (most MONAI Model Zoo bundles);
2. ``inferer(inputs, network)`` (``SimpleInferer`` when the config has none) with a batch
   dimension added;
3. ``postprocessing`` on ``{"image", "pred"}`` (unless ``postprocessing=False``);
   the output is ``data[output_key]`` (default ``pred``).

**Output conventions** (``output_type="auto"`` takes metadata
``network_data_format.outputs.<output_key>`` ``format``/``type``, else the shape):

- *classification*: a vector of C values per study. Probabilities are used as they are;
  logits are turned into probabilities (``activation="auto"``: values all in [0, 1] and,
  for C > 1, summing to 1 are probabilities; otherwise sigmoid for C = 1, softmax for
  C > 1; a single logit that may fall in [0, 1] needs ``activation="sigmoid"``).
  ``Prediction.score`` is the probability of channel ``positive_index`` (1, or
  0 when C = 1); ``scores`` names every channel by metadata ``channel_def``.
- *segmentation*: an image (C, X, Y[, Z]): a label map (C = 1, integer values), one
  probability/logit channel (C = 1, foreground where p >= 0.5), or C channels (argmax;
  channel 0 is background). Each foreground label gives a ``VolumeMeasurement`` (voxel
  count x voxel volume, in mL, named by ``channel_def`` or ``labels``) and a ``Finding``
  at its centroid in DICOM LPS mm with the diameter of a sphere of that volume;
  ``Prediction.score`` is the largest foreground probability (1.0/0.0 for a label map),
  so a triage threshold applies. Voxel geometry comes from the output's MetaTensor
  affine, else from the input when the shapes agree.

A bundle's config runs Python (``$`` expressions, ``_target_`` components): install only
bundles you would install as a Python package. monai and torch are imported on first use.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from gai_research.errors import GaiError
from gai_research.models.errors import ModelConfigError, ModelError, ModelInputError
from gai_research.models.types import (
    Finding,
    ModelInfo,
    Prediction,
    SeriesHandle,
    StudyInput,
    VolumeMeasurement,
)

__all__ = ["MonaiBundleModel"]

CONFIG_SUFFIXES = (".json", ".yaml", ".yml")
WEIGHTS = ("models/model.pt", "models/model.ts")
WRAPPED_STATE = ("model", "state_dict", "network", "net")
OutputType = Literal["auto", "classification", "segmentation"]
Activation = Literal["auto", "softmax", "sigmoid", "none"]


class MonaiBundleModel:
    """A MONAI bundle folder run in this process; see the module docstring.

    Construction checks the folder and builds the network (importing torch and MONAI,
    ~15 s the first time in a process), so that cost never lands in the first study's
    latency; ``preload=False`` defers it to the first ``predict`` (or :meth:`load`).
    """

    def __init__(
        self,
        info: ModelInfo,
        *,
        bundle_dir: str | Path,
        config: str = "inference",
        device: str = "cpu",
        output_key: str = "pred",
        input_key: str = "image",
        input_format: Literal["tensor", "nifti"] = "tensor",
        output_type: OutputType = "auto",
        activation: Activation = "auto",
        positive_index: int | None = None,
        labels: Mapping[int | str, str] | None = None,
        postprocessing: bool = True,
        weights: str | None = None,
        spatial_dims: int | None = None,
        preload: bool = True,
    ) -> None:
        self.info = info
        self.bundle_dir = Path(bundle_dir).expanduser().resolve()
        self.device = device
        self.output_key = output_key
        self.input_key = input_key
        self.input_format = input_format
        self.output_type = output_type
        self.activation = activation
        self.positive_index = positive_index
        self.labels = {int(k): str(v) for k, v in (labels or {}).items()}
        self.use_postprocessing = postprocessing
        self._spatial_dims = spatial_dims
        self._check_choices()
        configs = self.bundle_dir / "configs"
        self.meta_path = configs / "metadata.json"
        found = [configs / f"{config}{s}" for s in CONFIG_SUFFIXES]
        self.config_path = next((p for p in found if p.is_file()), found[0])
        candidates = [weights] if weights else list(WEIGHTS)
        self.weights_path = next(
            (self.bundle_dir / w for w in candidates if (self.bundle_dir / w).is_file()),
            self.bundle_dir / candidates[0],
        )
        for path, what in (
            (self.meta_path, "metadata"),
            (self.config_path, f"config {config!r}"),
            (self.weights_path, "weights"),
        ):
            if not path.is_file():
                raise self._config_error(f"the bundle has no {what} file ({path.name})")
        try:
            self.metadata: dict[str, Any] = json.loads(self.meta_path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise self._config_error(f"configs/metadata.json is unreadable: {exc}") from None
        self._lock = threading.Lock()
        self._loaded: dict[str, Any] | None = None
        self._workdir: Path | None = None
        if preload:
            self.load()

    def __repr__(self) -> str:
        return f"MonaiBundleModel({self.info.name!r}, bundle_dir={str(self.bundle_dir)!r})"

    def _check_choices(self) -> None:
        choices = {
            "input_format": (self.input_format, ("tensor", "nifti")),
            "output_type": (self.output_type, ("auto", "classification", "segmentation")),
            "activation": (self.activation, ("auto", "softmax", "sigmoid", "none")),
            "spatial_dims": (self._spatial_dims, (None, 2, 3)),
        }
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise self._config_error(
                    f"{name}={value!r} is not one of {', '.join(map(str, allowed))}", hint=None
                )

    def _config_error(self, message: str, hint: str | None = "") -> ModelConfigError:
        if hint == "":
            hint = (
                "a bundle needs configs/metadata.json, configs/<config>.json|yaml, models/model.pt"
            )
        return ModelConfigError(
            f"{self.info.name}: bundle {self.bundle_dir.name}: {message}",
            hint=hint,
            model=self.info.name,
        )

    # --- metadata -------------------------------------------------------------------------
    def _data_format(self, side: str, key: str) -> dict[str, Any]:
        formats = self.metadata.get("network_data_format") or {}
        found = (formats.get(side) or {}).get(key) or {}
        return found if isinstance(found, dict) else {}

    @property
    def spatial_dims(self) -> int:
        """The ``spatial_dims`` option, else 2 when metadata declares a 2-D input
        (``spatial_shape`` of length 2), else 3. A 2-D network gets (1, X, Y)."""
        if self._spatial_dims in (2, 3):
            return int(self._spatial_dims)
        shape = self._data_format("inputs", self.input_key).get("spatial_shape")
        return 2 if isinstance(shape, list) and len(shape) == 2 else 3

    def channel_names(self) -> dict[int, str]:
        """Output channel (or label value) -> name: ``labels``, else metadata ``channel_def``."""
        names = self._data_format("outputs", self.output_key).get("channel_def") or {}
        out = {int(k): str(v) for k, v in names.items() if str(k).lstrip("-").isdigit()}
        return {**out, **self.labels}

    # --- loading --------------------------------------------------------------------------
    def load(self) -> dict[str, Any]:
        """Parse the config and build the network, once (thread-safe)."""
        with self._lock:
            if self._loaded is None:
                self._loaded = self._build()
            return self._loaded

    def _build(self) -> dict[str, Any]:
        import torch
        from monai.bundle import ConfigParser
        from monai.inferers import SimpleInferer

        self._workdir = Path(tempfile.mkdtemp(prefix="gai-bundle-"))
        if (self.bundle_dir / "scripts").is_dir() and str(self.bundle_dir) not in sys.path:
            sys.path.insert(1, str(self.bundle_dir))  # as ConfigWorkflow.run does
        parser = ConfigParser()
        try:
            parser.read_config(str(self.config_path))
            parser.read_meta(str(self.meta_path))
            parser["bundle_root"] = str(self.bundle_dir)
            parser["device"] = torch.device(self.device)
            parser["output_dir"] = str(self._workdir)
            if "network_def" not in parser:
                raise self._config_error("the config has no network_def", hint=None)
            network = parser.get_parsed_content("network_def")
            inferer = (
                parser.get_parsed_content("inferer") if "inferer" in parser else SimpleInferer()
            )
            pre = parser.get_parsed_content("preprocessing") if "preprocessing" in parser else None
            post = None
            if self.use_postprocessing and "postprocessing" in parser:
                post = parser.get_parsed_content("postprocessing")
            network = self._load_weights(network, torch)
        except BaseException as exc:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
            if isinstance(exc, ModelError) or not isinstance(exc, Exception):
                raise
            raise self._config_error(
                f"the config does not build: {type(exc).__name__}: {exc}",
                hint="check it with `python -m monai.bundle verify_net_in_out network_def ...`",
            ) from None
        return {"network": network, "inferer": inferer, "pre": pre, "post": post}

    def _load_weights(self, network: Any, torch: Any) -> Any:
        device = torch.device(self.device)
        try:
            if self.weights_path.suffix == ".ts":
                network = torch.jit.load(str(self.weights_path), map_location=device)
            else:
                state = torch.load(self.weights_path, map_location=device, weights_only=True)
                for key in WRAPPED_STATE:
                    if isinstance(state, dict) and isinstance(state.get(key), dict):
                        state = state[key]
                        break
                network.load_state_dict(state)
        except Exception as exc:
            raise self._config_error(
                f"the weights do not load into network_def: {type(exc).__name__}: {exc}",
                hint="models/model.pt must be the state dict of network_def",
            ) from None
        return network.to(device).eval()

    def close(self) -> None:
        with self._lock:
            self._loaded = None
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None

    # --- prediction -----------------------------------------------------------------------
    def choose_series(self, study: StudyInput) -> SeriesHandle:
        """The study's series with the most files among the model's modalities."""
        candidates = study.series_of(*self.info.modalities) if self.info.modalities else []
        candidates = candidates or ([] if self.info.modalities else list(study.series))
        if not candidates:
            wanted = ", ".join(self.info.modalities) or "any"
            raise ModelInputError(
                f"{self.info.name}: study {study.study_uid} has no {wanted} series",
                hint="run the model on studies of its modalities",
                model=self.info.name,
                study_uid=study.study_uid,
            )
        return max(candidates, key=lambda s: (len(s.files), s.series_uid))

    def predict(self, study: StudyInput) -> Prediction:
        import torch

        started = time.perf_counter()
        series = self.choose_series(study)
        parts = self.load()
        try:
            volume = series.read(space="RAS")
        except GaiError as exc:
            raise ModelInputError(
                f"{self.info.name}: study {study.study_uid}: the series does not load as one "
                f"image: {exc.message}",
                hint="the bundle needs a series that forms one volume or one image",
                model=self.info.name,
                study_uid=study.study_uid,
            ) from None
        loaded = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=self._workdir) as tmp:
            data = {self.input_key: self._input(volume, Path(tmp))}
            try:
                with torch.no_grad():
                    if parts["pre"] is not None:
                        data = parts["pre"](data)
                    image = data[self.input_key]
                    batch = torch.as_tensor(image)[None].to(torch.device(self.device))
                    pred = parts["inferer"](inputs=batch, network=parts["network"])
                    data["pred"] = pred[0]
                    if parts["post"] is not None:
                        data = parts["post"](data)
                    output = data[self.output_key]
            except KeyError as exc:
                raise self._config_error(f"the pipeline lost the key {exc}", hint=None) from None
            except Exception as exc:
                raise ModelError(
                    f"{self.info.name}: study {study.study_uid}: the bundle failed: "
                    f"{type(exc).__name__}: {exc}",
                    hint="check the bundle's preprocessing against this modality",
                    model=self.info.name,
                    study_uid=study.study_uid,
                ) from None
        ran = time.perf_counter()
        prediction = self._prediction(study, series, volume, output)
        timing = {"read_s": loaded - started, "inference_s": ran - loaded}
        timing["total_s"] = time.perf_counter() - started
        return replace(prediction, timing=timing)

    def _input(self, volume: Any, folder: Path) -> Any:
        """What ``preprocessing`` gets under ``input_key``: a MetaTensor or a NIfTI path."""
        if self.input_format == "nifti":  # for 3-D bundles that start with LoadImaged
            import nibabel as nib

            path = folder / "image.nii.gz"
            nib.save(volume.to_nifti(), str(path))
            return str(path)
        tensor = volume.to_metatensor(channel_first=True)
        if self.spatial_dims == 3:
            return tensor
        import numpy as np
        from monai.data import MetaTensor

        affine = np.asarray(volume.affine)[np.ix_([0, 1, 3], [0, 1, 3])]  # drop the slice axis
        meta = {k: v for k, v in tensor.meta.items() if k != "affine"}
        return MetaTensor(tensor.as_tensor()[..., 0], affine=affine, meta=meta)

    # --- output conventions ---------------------------------------------------------------
    def _kind_of(self, values: Any) -> str:
        if self.output_type != "auto":
            return self.output_type
        declared = self._data_format("outputs", self.output_key)
        text = f"{declared.get('format', '')} {declared.get('type', '')}".lower()
        if "segment" in text or "label" in text:
            return "segmentation"
        if "classif" in text or "probab" in text:
            return "classification"
        return "classification" if values.ndim <= 1 else "segmentation"

    def _probabilities(self, values: Any, axis: int = 0) -> tuple[Any, bool]:
        """(probabilities, whether an activation was applied) under ``activation``."""
        import numpy as np

        mode = self.activation
        if mode == "auto":
            in_unit = bool(values.size) and values.min() >= 0.0 and values.max() <= 1.0
            sums_to_one = values.shape[axis] == 1 or bool(
                np.allclose(values.sum(axis=axis), 1.0, atol=1e-3)
            )
            if in_unit and sums_to_one:
                mode = "none"
            else:
                mode = "sigmoid" if values.shape[axis] == 1 else "softmax"
        if mode == "sigmoid":
            return 1.0 / (1.0 + np.exp(-values)), True
        if mode == "softmax":
            shifted = np.exp(values - values.max(axis=axis, keepdims=True))
            return shifted / shifted.sum(axis=axis, keepdims=True), True
        return values, False

    def _prediction(
        self, study: StudyInput, series: SeriesHandle, volume: Any, output: Any
    ) -> Prediction:
        import numpy as np

        values = _numpy(output).astype(np.float64)
        if not np.all(np.isfinite(values)):
            raise ModelError(
                f"{self.info.name}: study {study.study_uid}: the network output is not finite",
                model=self.info.name,
                study_uid=study.study_uid,
            )
        raw: dict[str, Any] = {
            "bundle": self.bundle_dir.name,
            "bundle_version": self.metadata.get("version"),
            "output_shape": list(values.shape),
            "series_uid": series.series_uid,
        }
        if self._kind_of(values) == "classification":
            return self._classification(study, values.reshape(-1), raw)
        return self._segmentation(study, series, volume, output, values, raw)

    def _classification(self, study: StudyInput, values: Any, raw: dict) -> Prediction:
        probs, activated = self._probabilities(values)
        index = self.positive_index
        if index is None:
            index = 1 if len(probs) > 1 else 0
        if not 0 <= index < len(probs):
            raise self._config_error(
                f"positive_index {index} is outside the {len(probs)} output channels", hint=None
            )
        names = self.channel_names()
        scores = {names.get(i, f"class_{i}"): float(p) for i, p in enumerate(probs)}
        raw |= {"output": [float(v) for v in values], "activation_applied": activated}
        return Prediction(study.study_uid, score=float(probs[index]), scores=scores, raw=raw)

    def _segmentation(
        self,
        study: StudyInput,
        series: SeriesHandle,
        volume: Any,
        output: Any,
        values: Any,
        raw: dict,
    ) -> Prediction:
        import numpy as np

        if values.ndim == self.spatial_dims:  # no channel axis
            values = values[None]
        if values.shape[0] == 1 and np.allclose(values, np.round(values)):
            label_map = np.round(values[0]).astype(np.int64)
            foreground = (label_map != 0).astype(np.float64)
        else:
            probs, _ = self._probabilities(values)
            if probs.shape[0] == 1:
                label_map = (probs[0] >= 0.5).astype(np.int64)
                foreground = probs[0]
            else:
                label_map = probs.argmax(axis=0)
                foreground = probs[1:].max(axis=0)
        affine, space = self._geometry(output, volume, label_map.shape, study)
        voxel_mm3 = abs(float(np.linalg.det(affine[:3, :3])))
        names = self.channel_names()
        volumes, findings, counts = [], [], {}
        for label in (int(v) for v in np.unique(label_map) if v != 0):
            mask = label_map == label
            count = int(mask.sum())
            name = names.get(label, f"label_{label}")
            counts[name] = count
            volume_ml = count * voxel_mm3 / 1000.0
            volumes.append(VolumeMeasurement(name, volume_ml, series.series_uid))
            ijk = np.argwhere(mask).mean(axis=0)
            world = affine @ np.r_[ijk[:3], [0.0] * (3 - len(ijk[:3])), 1.0]
            x, y, z = (world[:3] * ([-1, -1, 1] if space == "RAS" else 1)).tolist()
            findings.append(
                Finding(
                    score=float(foreground[mask].max()),
                    x_mm=x,
                    y_mm=y,
                    z_mm=z,
                    diameter_mm=(6.0 * count * voxel_mm3 / math.pi) ** (1 / 3),
                    label=name,
                    series_uid=series.series_uid,
                )
            )
        raw |= {"voxels": counts, "voxel_mm3": voxel_mm3}
        score = float(foreground.max()) if foreground.size else 0.0
        return Prediction(
            study.study_uid,
            score=score,
            findings=tuple(findings),
            volumes=tuple(volumes),
            raw=raw,
        )

    def _geometry(self, output: Any, volume: Any, shape: tuple, study: StudyInput):
        """The 4x4 index->world affine of the output grid and its space (RAS or LPS)."""
        import numpy as np

        affine = getattr(output, "affine", None)
        if affine is not None:
            affine = _numpy(affine).astype(np.float64)
            if affine.shape == (3, 3):  # 2-D: (x, y) + translation
                full = np.eye(4)
                full[np.ix_([0, 1, 3], [0, 1, 3])] = affine
                affine = full
            space = str(getattr(output, "meta", {}).get("space", "RAS")).upper()
            return affine, ("LPS" if space == "LPS" else "RAS")
        if tuple(shape) == tuple(volume.shape[: len(shape)]):
            return np.asarray(volume.affine, dtype=np.float64), volume.space
        raise ModelError(
            f"{self.info.name}: study {study.study_uid}: the segmentation grid {tuple(shape)} "
            f"differs from the input {volume.shape} and carries no affine",
            hint="invert the preprocessing in postprocessing (Invertd) or output a MetaTensor",
            model=self.info.name,
            study_uid=study.study_uid,
        )


def _numpy(value: Any) -> Any:
    import numpy as np

    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if hasattr(value, "as_tensor"):
            value = value.as_tensor()
        value = value.numpy()
    return np.asarray(value)
