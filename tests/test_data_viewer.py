"""The notebook viewer, headless: build the widget, move it, and read the PNG it shows."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from gai_research.data.viewer import VolumeViewer, as_volume, show
from gai_research.data.viewer_render import (
    FINDING_COLOUR,
    PREDICTION_COLOUR,
    WINDOWS,
    plane_layout,
    render_png,
    resolve_window,
)
from gai_research.data.volume import Volume, read_files
from gai_research.data.volume_errors import VolumeError
from tests.volume_series import label_rows, series_dir, synth_cohort


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth_cohort(tmp_path_factory)


def _rows(root: Path, name: str) -> list[dict[str, str]]:
    return label_rows(root, name)


def _series(root: Path, task: str) -> Path:
    return series_dir(root, task)


@pytest.fixture(scope="module")
def chest(synth: Path) -> tuple[Volume, dict[str, float], Path]:
    folder = _series(synth, "lung_nodule_ct")
    row = max(_rows(synth, "nodules_ct.csv"), key=lambda r: float(r["diameter_mm"]))
    nodule = {k: float(row[k]) for k in ("x_mm", "y_mm", "z_mm", "diameter_mm")}
    return read_files(folder), nodule, folder


def picture(viewer: VolumeViewer) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(viewer.png)).convert("RGB")).astype(int)


def coloured(pixels: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.all(np.abs(pixels - np.asarray(colour)) < 40, axis=-1)


def colour_near(pixels: np.ndarray, x: float, y: float, colour, reach: int = 2) -> bool:
    xi, yi = round(x), round(y)
    box = pixels[max(yi - reach, 0) : yi + reach + 1, max(xi - reach, 0) : xi + reach + 1]
    return bool(coloured(box, colour).any())


def test_slider_view_and_window_change_the_picture(chest):
    volume, nodule, _ = chest
    viewer = show(volume, findings=[nodule])
    first = viewer.png
    assert first.startswith(b"\x89PNG")
    assert viewer.view == "axial" and viewer.slider.max == 63
    viewer.slider.value = (viewer.index + 20) % 64
    moved = viewer.png
    assert moved != first
    viewer.view_buttons.value = "coronal"
    assert viewer.slider.max == 255 and viewer.png != moved
    assert Image.open(io.BytesIO(viewer.png)).size == (512, 228)  # 360 x 160 mm, square mm
    coronal = viewer.png
    viewer.window_menu.value = "bone"
    assert viewer.window == WINDOWS["bone"] and viewer.png != coronal
    viewer.set_window((-1000, 200))
    assert viewer.window == (-1000.0, 200.0) and viewer.window_menu.value == "custom"
    assert "coronal" in viewer.info.value


def test_viewer_starts_at_the_first_finding_and_lists_it(chest):
    volume, nodule, _ = chest
    viewer = show(volume, findings=[nodule])
    k = volume.world_to_voxel([nodule["x_mm"], nodule["y_mm"], nodule["z_mm"]], space="LPS")[2]
    assert viewer.index == round(k)
    assert len(viewer.marks_on_slice()) == 1
    assert "1 here" in viewer.info.value
    assert [label for label, _ in viewer.goto.options] == ["1. finding"]


def _expected_axial(folder: Path, nodule: dict[str, float]) -> tuple[float, float, float]:
    """Where the nodule centre must appear in the 512-px axial picture, from the DICOM
    header alone (columns run along +x, rows along +y; 2 picture px per voxel)."""
    ds = pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True)
    x0, y0 = float(ds.ImagePositionPatient[0]), float(ds.ImagePositionPatient[1])
    row_mm, col_mm = (float(v) for v in ds.PixelSpacing)
    i, j = (nodule["x_mm"] - x0) / col_mm, (nodule["y_mm"] - y0) / row_mm
    scale = 512 / int(ds.Columns)
    return (i + 0.5) * scale - 0.5, (j + 0.5) * scale - 0.5, scale / col_mm


def test_prediction_circle_is_drawn_around_the_nodule_axially(chest):
    volume, nodule, folder = chest
    prediction = dict(nodule, diameter_mm=30.0, score=0.91)  # a big circle: easy to find
    viewer = show(volume, predictions=[prediction], window="lung")
    x, y, px_per_mm = _expected_axial(folder, nodule)
    k = volume.world_to_voxel([nodule[a] for a in ("x_mm", "y_mm", "z_mm")], space="LPS")[2]
    offset = abs(k - viewer.index) * 2.5
    r = np.sqrt(15.0**2 - offset**2) * px_per_mm
    pixels = picture(viewer)
    for dx, dy in ((r, 0), (-r, 0), (0, r), (0, -r)):
        assert colour_near(pixels, x + dx, y + dy, PREDICTION_COLOUR), (dx, dy)
    assert not colour_near(pixels, x, y, PREDICTION_COLOUR)  # a ring, not a disc
    assert "0.91" in viewer.info.value


def test_circle_is_drawn_in_the_coronal_view_with_the_head_up(chest):
    volume, nodule, folder = chest
    viewer = show(volume, findings=[dict(nodule, diameter_mm=30.0)], view="coronal")
    ds = pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True)
    x, _, px_per_mm = _expected_axial(folder, nodule)
    z_top = max(volume.voxel_to_world([0, 0, k], space="LPS")[2] for k in (0, 63))
    height = Image.open(io.BytesIO(viewer.png)).size[1]
    scale_y = height / 64
    y = ((z_top - nodule["z_mm"]) / 2.5 + 0.5) * scale_y - 0.5
    j = (nodule["y_mm"] - float(ds.ImagePositionPatient[1])) / float(ds.PixelSpacing[0])
    r_mm = np.sqrt(15.0**2 - ((j - viewer.index) * 1.40625) ** 2)
    pixels = picture(viewer)
    assert colour_near(pixels, x + r_mm * px_per_mm, y, FINDING_COLOUR)
    assert colour_near(pixels, x, y - r_mm * scale_y / 2.5, FINDING_COLOUR)


def test_marks_are_drawn_only_on_slices_that_cut_them(chest):
    volume, nodule, _ = chest
    viewer = show(volume, findings=[nodule])
    assert coloured(picture(viewer), FINDING_COLOUR).any()
    viewer.slider.value = (viewer.index + 30) % 64
    assert not coloured(picture(viewer), FINDING_COLOUR).any()
    assert viewer.marks_on_slice() == []
    viewer.goto.value = 0
    assert coloured(picture(viewer), FINDING_COLOUR).any()


def test_dx_finding_is_drawn_at_its_row_and_column(synth):
    folder = _series(synth, "lung_nodule_dx")
    finding = _rows(synth, "findings_dx.csv")[0]
    viewer = show(read_files(folder), findings=[finding])
    assert viewer.view_buttons.options == ("axial",) and viewer.slider.max == 0
    row, col, diameter = int(finding["row"]), int(finding["col"]), float(finding["diameter_mm"])
    r = diameter / 2 / 0.7  # 512 px image shown at 512 px
    pixels = picture(viewer)
    assert colour_near(pixels, col + r, row, FINDING_COLOUR)
    assert colour_near(pixels, col, row - r, FINDING_COLOUR)


def test_a_finding_of_another_image_is_left_out(synth):
    folder = _series(synth, "lung_nodule_dx")
    finding = dict(_rows(synth, "findings_dx.csv")[0], sop_uid="2.25.999")
    viewer = show(read_files(folder), findings=[finding])
    assert viewer.marks == []


@pytest.mark.parametrize(
    ("window", "expected"),
    [(name, value) for name, value in WINDOWS.items()]
    + [("auto", (-600.0, 1500.0)), ("dicom", (-600.0, 1500.0)), ((50, 350), (50.0, 350.0))],
)
def test_window_presets(window, expected, chest):
    volume, _, _ = chest
    assert resolve_window(window, volume.array, volume.meta) == expected


def test_mammography_window_comes_from_the_breast(synth):
    path = sorted(_series(synth, "breast_mg").iterdir())[0]
    volume = read_files(path)
    centre, width = resolve_window("auto", volume.array, volume.meta)
    assert resolve_window("mammography", volume.array, volume.meta) == (centre, width)
    low, high = centre - width / 2, centre + width / 2
    assert low > np.percentile(volume.array, 50)  # above the air around the breast
    assert high <= volume.array.max()


@pytest.mark.parametrize("bad", ["soft", (40, 0)])
def test_bad_window_is_an_error(bad, chest):
    with pytest.raises(VolumeError, match="window"):
        show(chest[0], window=bad)


def test_monochrome1_is_shown_inverted():
    array = np.zeros((8, 8, 1), dtype=np.float32)
    array[2, 3, 0] = 100.0
    meta = {"space": "LPS", "geometry": "image", "modality": "DX"}
    normal = Volume(array, np.eye(4), dict(meta, photometric_interpretation="MONOCHROME2"))
    inverted = Volume(array, np.eye(4), dict(meta, photometric_interpretation="MONOCHROME1"))
    a = picture(show(normal, window=(50, 100), size=8))
    b = picture(show(inverted, window=(50, 100), size=8))
    assert np.array_equal(a, 255 - b)
    assert a[3, 2, 0] == 255 and a[0, 0, 0] == 0  # (row 3, column 2) is voxel (2, 3)


# acquisition planes, as ImageOrientationPatient (row cosines, column cosines) in LPS
ACQUISITIONS = {
    "axial": ((1, 0, 0), (0, 1, 0)),
    "coronal": ((1, 0, 0), (0, 0, -1)),
    "sagittal": ((0, 1, 0), (0, 0, -1)),
    "axial_feet_first": ((-1, 0, 0), (0, 1, 0)),
}
# where a point at the patient's left, anterior, superior corner must appear: (right?, top?)
EXPECTED_QUADRANT = {"axial": (True, True), "coronal": (True, True), "sagittal": (False, True)}


@pytest.mark.parametrize("acquired", ACQUISITIONS)
@pytest.mark.parametrize("view", ["axial", "coronal", "sagittal"])
def test_radiological_convention_whatever_the_acquisition(acquired, view):
    row, col = (np.asarray(v, dtype=float) for v in ACQUISITIONS[acquired])
    normal = np.cross(row, col)
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1], affine[:3, 2] = row, col, normal
    affine[:3, 3] = -10.0 * (row + col + normal)  # the grid spans -10..+10 mm on every axis
    array = np.zeros((21, 21, 21), dtype=np.float32)
    las = np.array([6.0, -6.0, 6.0, 1.0])  # left, anterior, superior (LPS)
    i, j, k = np.rint(np.linalg.inv(affine) @ las)[:3].astype(int)
    array[i, j, k] = 1000.0
    volume = Volume(array, affine, {"space": "LPS", "modality": "MR"})
    layout = plane_layout(affine, array.shape, view)
    index = (i, j, k)[layout.slice_axis]
    png = render_png(array, layout, index, (500.0, 1000.0), max_side=21)
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    y, x = np.unravel_index(np.argmax(pixels), pixels.shape)
    right, top = EXPECTED_QUADRANT[view]
    assert (x > 10) == right and (y < 10) == top, (acquired, view, x, y)
    assert show(volume, view=view).view == view


def test_show_takes_a_channel_first_metatensor(chest):
    volume, nodule, _ = chest
    tensor = volume.to_metatensor(channel_first=True)
    again = as_volume(tensor)
    assert again.shape == volume.shape
    assert np.allclose(again.affine, volume.affine)
    viewer = show(tensor, findings=[nodule])
    assert viewer.marks_on_slice()


def test_show_rejects_what_is_not_a_volume():
    with pytest.raises(VolumeError, match="cannot show"):
        show(np.zeros((4, 4, 4)))


def test_viewer_displays_as_a_widget(chest):
    viewer = show(chest[0])
    bundle = viewer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
