"""Volume loading: geometry checked against the synthetic cohort's known nodule centres.

The synthetic files are identified (not pseudonymized): loading files needs no catalog,
and pseudonymization changes UIDs, never geometry. One 1-patient cohort (~2 s) is shared
by the session (``tests/volume_series.py``); each variant rewrites the chest CT series
the way a PACS or a converter might store it, and the voxel at the labelled world centre
must still be inside the nodule.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import get_decoder, get_encoder
from pydicom.uid import JPEG2000Lossless, JPEGLosslessSV1, JPEGLSLossless, RLELossless

from gai_research.data.volume import (
    Volume,
    load_files,
    load_instance,
    load_series,
    read_files,
    read_series,
)
from gai_research.data.volume_errors import (
    DecoderMissingError,
    DuplicateSliceError,
    MissingGeometryError,
    MixedOrientationError,
    MixedSeriesError,
    MixedShapeError,
    NotAnImageError,
    SeriesNotFoundError,
    SliceGapError,
    VolumeError,
)
from gai_research.data.volume_frames import decode_frames, read_source
from gai_research.errors import GaiError
from tests.volume_series import (
    broken,
    classic_multiframe,
    compressed,
    enhanced,
    label_rows,
    nearest_slices,
    renumber,
    rewrite,
    series_dir,
    synth_cohort,
)

NODULE_MIN_HU = -300.0  # nodules are drawn at 40 HU (noise 18 HU) in -850 HU lung


# --- the shared synthetic cohort ------------------------------------------------------------


class Synth:
    """The shared synthetic cohort and its ground truth."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def series_dir(self, task: str) -> Path:
        return series_dir(self.root, task)

    def files(self, task: str) -> list[Path]:
        return sorted(self.series_dir(task).glob("*.dcm"))

    def nodule(self) -> tuple[np.ndarray, float]:
        """The largest nodule: world centre (LPS mm) and diameter."""
        rows = label_rows(self.root, "nodules_ct.csv")
        row = max(rows, key=lambda r: float(r["diameter_mm"]))
        centre = np.array([float(row[k]) for k in ("x_mm", "y_mm", "z_mm")])
        return centre, float(row["diameter_mm"])

    def dx_finding(self) -> tuple[int, int]:
        row = label_rows(self.root, "findings_dx.csv")[0]
        return int(row["row"]), int(row["col"])


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return Synth(synth_cohort(tmp_path_factory))


def nodule_hu(volume: Volume, centre_lps: np.ndarray) -> float:
    i, j, k = np.rint(volume.world_to_voxel(centre_lps, space="LPS")).astype(int)
    assert 0 <= k < volume.shape[2], "the nodule centre falls outside the loaded slices"
    return float(volume.array[i, j, k])


def _variant(name: str, synth: Synth, out: Path) -> Path:
    files = synth.files("lung_nodule_ct")
    n = len(files)
    if name == "as_written":
        return synth.series_dir("lung_nodule_ct")
    if name == "shuffled_instance_numbers":
        numbers = list(range(1, n + 1))
        random.Random(3).shuffle(numbers)
        return renumber(files, out, numbers)
    if name == "reverse_stored_order":
        return renumber(files, out, list(range(n, 0, -1)))
    if name == "enhanced_multiframe_shuffled":
        return enhanced(files, out, per_file=False, shuffle=True)
    if name == "enhanced_single_frame_objects":
        return enhanced(files, out, per_file=True, shuffle=False)
    if name == "classic_multiframe":
        return classic_multiframe(files, out)
    syntax = {"rle": RLELossless, "jpeg_ls": JPEGLSLossless, "jpeg2000": JPEG2000Lossless}[name]
    if not get_encoder(syntax).is_available:
        pytest.skip(f"no encoder for {syntax.name} installed")
    centre, _ = synth.nodule()
    return compressed(nearest_slices(files, centre[2]), out, syntax)


VARIANTS = [
    "as_written",
    "shuffled_instance_numbers",
    "reverse_stored_order",
    "enhanced_multiframe_shuffled",
    "enhanced_single_frame_objects",
    "classic_multiframe",
    "rle",
    "jpeg_ls",
    "jpeg2000",
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_labelled_nodule_centre_is_inside_the_nodule(variant, synth, tmp_path):
    folder = _variant(variant, synth, tmp_path / variant)
    centre, diameter = synth.nodule()
    volume = read_files(folder)
    assert volume.array.dtype == np.float32
    assert volume.spacing == pytest.approx([1.40625, 1.40625, 2.5], abs=1e-4)
    assert nodule_hu(volume, centre) > NODULE_MIN_HU
    # a nodule-sized step away along x is lung or chest wall, not nodule
    beside = centre + np.array([diameter + 4.0, 0.0, 0.0])
    assert nodule_hu(volume, beside) < NODULE_MIN_HU
    positions = np.asarray(volume.meta["slice_positions_mm"])
    assert np.all(np.diff(positions) > 0), "slices are sorted along the normal"


@pytest.mark.parametrize(
    "variant", ["shuffled_instance_numbers", "reverse_stored_order", "enhanced_multiframe_shuffled"]
)
def test_variants_give_the_same_voxels(variant, synth, tmp_path):
    reference = read_files(synth.series_dir("lung_nodule_ct"))
    volume = read_files(_variant(variant, synth, tmp_path / variant))
    assert np.array_equal(volume.array, reference.array)
    assert np.allclose(volume.affine, reference.affine)


def test_meta_records_the_source_order_and_series(synth):
    files = synth.files("lung_nodule_ct")
    volume = read_files(files)
    meta = volume.meta
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    assert meta["series_uid"] == first.SeriesInstanceUID
    assert meta["study_uid"] == first.StudyInstanceUID
    assert meta["modality"] == "CT"
    assert meta["geometry"] == "volume"
    assert meta["window"] == [-600.0, 1500.0]
    # the synthetic CT is stored head first, so sorting along +z reverses the files
    assert meta["source_files"] == [str(f) for f in reversed(files)]
    assert meta["source_frames"] == [1] * len(files)
    assert len(meta["sop_uids"]) == len(set(meta["sop_uids"])) == len(files)
    assert tuple(meta["spatial_shape"]) == volume.shape == (256, 256, 64)


def test_ras_and_lps_differ_by_flipping_x_and_y(synth):
    folder = synth.series_dir("lung_nodule_ct")
    ras, lps = read_files(folder, space="RAS"), read_files(folder, space="lps")
    assert ras.meta["space"] == "RAS" and lps.meta["space"] == "LPS"
    assert np.allclose(ras.affine, np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps.affine)
    centre, _ = synth.nodule()
    ras_point = centre * np.array([-1.0, -1.0, 1.0])
    assert np.allclose(ras.world_to_voxel(ras_point), lps.world_to_voxel(centre))
    assert np.allclose(lps.in_space("RAS").affine, ras.affine)
    assert np.allclose(ras.voxel_to_world([0, 0, 0], space="LPS"), lps.affine[:3, 3])


def test_unknown_space_is_an_error(synth):
    with pytest.raises(VolumeError, match="unknown space"):
        read_files(synth.files("stroke_ct")[:1], space="RAI")


def test_enhanced_ct_from_pydicom_data():
    """A vendor-style Enhanced CT (2 frames, row cosine pointing right, rescale in the
    shared functional groups)."""
    volume = read_files(get_testdata_file("eCT_Supplemental.dcm"), space="LPS")
    ds = pydicom.dcmread(get_testdata_file("eCT_Supplemental.dcm"))
    assert volume.shape == (512, 512, 2)
    normal = np.array([0.0, 0.0, -1.0])  # (-1, 0, 0) x (0, 1, 0)
    step = volume.affine[:3, 2]
    assert np.dot(step, normal) > 0, "the slice axis points along the normal"
    positions = [
        np.array(item.PlanePositionSequence[0].ImagePositionPatient, dtype=float)
        for item in ds.PerFrameFunctionalGroupsSequence
    ]
    first = min(positions, key=lambda p: float(np.dot(p, normal)))
    assert np.allclose(volume.affine[:3, 3], first)
    expected = ds.pixel_array.astype(np.float32) - 1024.0
    k_of_frame = np.argsort(np.argsort([np.dot(p, normal) for p in positions]))
    for frame, k in enumerate(k_of_frame):
        assert np.array_equal(volume.array[:, :, k], expected[frame].T)


# --- pixel decoding ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("compressed", "reference"),
    [
        ("MR_small_RLE.dcm", "MR_small.dcm"),
        ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),
        ("MR_small_jp2klossless.dcm", "MR_small.dcm"),
        ("emri_small_jpeg_2k_lossless.dcm", "emri_small.dcm"),
        ("emri_small_RLE.dcm", "emri_small.dcm"),
        ("emri_small_big_endian.dcm", "emri_small.dcm"),
        ("MR2_J2KR.dcm", "MR2_UNCR.dcm"),
    ],
)
def test_compressed_pixels_decode_like_the_uncompressed_file(compressed, reference):
    ours = decode_frames(read_source(Path(get_testdata_file(compressed)), 0))
    expected = decode_frames(read_source(Path(get_testdata_file(reference)), 0))
    assert np.array_equal(ours, expected)


@pytest.mark.parametrize(
    "name", ["MR_small.dcm", "CT_small.dcm", "emri_small.dcm", "OBXXXX1A.dcm", "MR2_UNCI.dcm"]
)
def test_native_fast_path_matches_pydicom(name):
    path = Path(get_testdata_file(name))
    ours = decode_frames(read_source(path, 0))
    expected = pydicom.dcmread(path).pixel_array
    assert ours.dtype == expected.dtype
    assert np.array_equal(ours, expected.reshape(ours.shape))


def test_jpeg_lossless_decodes():
    """JPEG Lossless (process 14), common in PACS, decodes with python-gdcm (a dependency)."""
    path = Path(get_testdata_file("JPEG-LL.dcm"))
    assert get_decoder(JPEGLosslessSV1).is_available
    frames = decode_frames(read_source(path, 0))
    assert frames.shape == (1, 1024, 256)


def test_a_missing_decoder_names_the_packages(monkeypatch):
    """As on a machine without pylibjpeg: pydicom's decoder reports what it lacks."""
    import pydicom.pixels

    real = pydicom.pixels.get_decoder(JPEGLosslessSV1)

    class Unavailable:
        is_available = False
        missing_dependencies = real.missing_dependencies or ["pylibjpeg - requires pylibjpeg"]

    monkeypatch.setattr(pydicom.pixels, "get_decoder", lambda uid: Unavailable())
    source = read_source(Path(get_testdata_file("JPEG-LL.dcm")), 0, series_uid="2.25.5")
    with pytest.raises(DecoderMissingError, match="no decoder for it is installed") as caught:
        decode_frames(source, series_uid="2.25.5")
    assert "2.25.5" in str(caught.value) and "install one of" in caught.value.hint


# --- broken series ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "error", "words"),
    [
        ("gap", SliceGapError, "not uniform"),
        ("duplicate_position", DuplicateSliceError, "distinct positions"),
        ("mixed_orientation", MixedOrientationError, "different orientations"),
        ("mixed_size", MixedShapeError, "differ in size"),
        ("missing_position", MissingGeometryError, "ImagePositionPatient"),
        ("two_series", MixedSeriesError, "2 series"),
        ("not_dicom", NotAnImageError, "not a DICOM file"),
    ],
)
def test_broken_series_raise_a_clear_error(kind, error, words, synth, tmp_path):
    files = synth.files("stroke_ct")
    uid = pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID
    paths = broken(kind, files, tmp_path / kind)
    with pytest.raises(error, match=words) as caught:
        read_files(paths)
    assert isinstance(caught.value, GaiError)
    assert caught.value.hint
    if kind != "not_dicom":
        assert uid in str(caught.value)
        assert caught.value.series_uid in (uid, "2.25.1")


def test_gap_tolerance_can_be_widened(synth, tmp_path):
    paths = broken("gap", synth.files("stroke_ct"), tmp_path / "gap")
    volume = read_files(paths, spacing_tolerance=1.5)
    assert volume.shape[2] == 5
    assert volume.spacing[2] == pytest.approx(6.25)  # 25 mm over 4 steps


# --- 2-D images -----------------------------------------------------------------------------


def test_dx_loads_as_one_slice_with_its_pixel_spacing(synth):
    path = synth.files("lung_nodule_dx")[0]
    volume = read_files(path, space="LPS")
    ds = pydicom.dcmread(path)
    assert volume.shape == (512, 512, 1)
    assert volume.meta["geometry"] == "image"
    assert volume.meta["pixel_spacing_source"] == "PixelSpacing"
    assert volume.spacing[:2] == pytest.approx([0.7, 0.7])
    row, col = synth.dx_finding()
    assert volume.array[col, row, 0] == ds.pixel_array[row, col]  # (X=column, Y=row) layout
    # PatientOrientation L\F: rows run to the patient's left, columns to the feet
    assert np.allclose(volume.affine[:3, 0], [0.7, 0, 0])
    assert np.allclose(volume.affine[:3, 1], [0, 0, -0.7])


def test_imager_pixel_spacing_is_the_fallback(synth, tmp_path):
    out = rewrite(
        synth.files("lung_nodule_dx"), tmp_path / "dx", lambda ds, i: delattr(ds, "PixelSpacing")
    )
    volume = read_files(out)
    assert volume.meta["pixel_spacing_source"] == "ImagerPixelSpacing"
    assert volume.spacing[:2] == pytest.approx([0.7, 0.7])


def test_mammography_view_loads_but_the_four_views_are_not_a_volume(synth):
    files = synth.files("breast_mg")
    volume = read_files(files[0])
    assert volume.shape[2] == 1 and volume.modality == "MG"
    with pytest.raises(MixedSeriesError, match="4 separate MG projection images") as caught:
        read_files(files)
    assert "load_instance" in caught.value.hint


def test_a_folder_and_its_file_list_load_the_same(synth):
    folder = synth.series_dir("dementia_mr")
    a, b = read_files(folder), read_files(sorted(folder.iterdir()))
    assert a.shape == (160, 160, 80)
    assert np.array_equal(a.array, b.array)


# --- MONAI MetaTensor, NIfTI, the catalog ---------------------------------------------------


@pytest.mark.filterwarnings("ignore:NvImgCodecPydicomReader")
def test_load_files_matches_monai_loadimage_layout(synth):
    """Same (X, Y, Z) layout and RAS affine as MONAI's LoadImage with its pydicom reader;
    MONAI keeps the stored (InstanceNumber) order, we sort along the normal, so the slice
    axis is reversed for this head-first series and every voxel sits at the same place."""
    from monai.data import MetaTensor
    from monai.transforms import LoadImage

    folder = synth.series_dir("lung_nodule_ct")
    ours = load_files(folder)
    theirs = LoadImage(reader="PydicomReader", image_only=True)(str(folder))
    assert isinstance(ours, MetaTensor)
    assert ours.shape == theirs.shape == (256, 256, 64)
    assert ours.dtype == theirs.dtype
    assert ours.meta["space"] == theirs.meta["space"] == "RAS"
    assert np.array_equal(ours.numpy(), theirs.numpy()[:, :, ::-1])
    n = ours.shape[2]
    for ijk in ([0, 0, 0], [10, 200, 5], [255, 17, 63]):
        flipped = [ijk[0], ijk[1], n - 1 - ijk[2], 1]
        ours_world = ours.affine.numpy() @ [*ijk, 1]
        assert np.allclose(ours_world, theirs.affine.numpy() @ flipped, atol=1e-3)


def test_channel_first_and_monai_ensure_channel_first_agree(synth):
    from monai.transforms import EnsureChannelFirst

    files = synth.files("stroke_ct")[:4]
    plain, first = load_files(files), load_files(files, channel_first=True)
    assert first.shape == (1, *plain.shape)
    assert EnsureChannelFirst()(plain).shape == first.shape
    assert first.meta["original_channel_dim"] == 0


def test_nifti_written_from_the_metatensor_keeps_the_affine(synth, tmp_path):
    import nibabel as nib

    volume = load_files(synth.series_dir("lung_nodule_ct"))
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(volume.numpy(), volume.affine.numpy()), path)
    image = nib.load(path)
    assert np.allclose(image.affine, volume.affine.numpy(), atol=1e-4)
    assert nib.aff2axcodes(image.affine) == ("L", "P", "S")  # columns run to the patient's left
    data = np.asarray(image.dataobj)
    centre, _ = synth.nodule()
    ras = np.append(centre * [-1.0, -1.0, 1.0], 1.0)
    i, j, k = np.rint(np.linalg.inv(image.affine) @ ras)[:3].astype(int)
    assert data[i, j, k] > NODULE_MIN_HU
    same = read_files(synth.series_dir("lung_nodule_ct")).to_nifti()
    assert np.allclose(same.affine, image.affine, atol=1e-4)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory):
    from tests.data_fixtures import pseudonymized_catalog

    return pseudonymized_catalog(tmp_path_factory)


def test_load_series_through_the_catalog_finds_the_nodule(catalog):
    from gai_research.store import open_snapshot

    settings = catalog.settings()
    with open_snapshot(settings, catalog.snapshot) as snap:
        nodule = snap.df(
            "SELECT series_uid, x_mm, y_mm, z_mm FROM labels WHERE kind = 'nodule' "
            "ORDER BY diameter_mm DESC LIMIT 1"
        ).iloc[0]
    volume = load_series(nodule.series_uid, settings=settings, snapshot=catalog.snapshot)
    assert volume.meta["series_uid"] == nodule.series_uid
    assert volume.meta["series_uid"].startswith("2.25.")
    centre = np.array([nodule.x_mm, nodule.y_mm, nodule.z_mm])
    ras = np.append(centre * [-1.0, -1.0, 1.0], 1.0)
    i, j, k = np.rint(np.linalg.inv(volume.affine.numpy()) @ ras)[:3].astype(int)
    assert float(volume[i, j, k]) > NODULE_MIN_HU


def test_unknown_series_names_the_snapshot(catalog):
    with pytest.raises(SeriesNotFoundError, match="is not in snapshot") as caught:
        read_series("2.25.42", settings=catalog.settings(), snapshot=catalog.snapshot)
    assert caught.value.series_uid == "2.25.42"


def test_load_instance_reads_one_mammography_view(catalog):
    from gai_research.store import open_snapshot

    settings = catalog.settings()
    with open_snapshot(settings, catalog.snapshot) as snap:
        sop = snap.df(
            "SELECT i.sop_uid FROM instances i JOIN series s USING (series_uid) "
            "WHERE s.modality = 'MG' ORDER BY i.sop_uid LIMIT 1"
        ).sop_uid[0]
        view = load_instance(sop, settings=settings, snapshot=snap)
    assert view.shape[2] == 1 and view.meta["modality"] == "MG"
    assert view.meta["sop_uids"] == [sop]
