"""A notebook viewer for volumes: ``show(series_uid or volume, findings=..., predictions=...)``.

    >>> gai.show(series_uid)                                   # from the latest snapshot
    >>> gai.show(volume, findings=cohort.labels("lung_nodule_ct"), predictions=preds)

An ipywidgets panel: the view (axial, coronal, sagittal), a window preset, a slice
slider, a "go to" list of the findings and predictions, and the slice as a PNG picture.
Ground-truth findings are drawn as green circles, predictions as magenta ones, on every
slice that cuts them (the circle is the sphere's cut at that slice). Coordinates are
DICOM patient coordinates (LPS mm, as the catalog's labels) whatever the volume's
space; 2-D findings use ``row_px``/``col_px``.

Nothing here prints or calls ``display``: the returned :class:`VolumeViewer` shows itself
when it is the last expression of a cell (or pass ``viewer.widget`` to ``display``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gai_research.data.viewer_render import (
    FINDING_COLOUR,
    PREDICTION_COLOUR,
    VIEWS,
    WINDOWS,
    Mark,
    marks_from,
    plane_layout,
    radius_on_slice,
    render_png,
    resolve_window,
)
from gai_research.data.volume import Volume, check_space, read_series
from gai_research.data.volume_errors import VolumeError
from gai_research.data.volume_geometry import LPS_TO_RAS

if TYPE_CHECKING:
    from gai_research.config import Settings

__all__ = ["VolumeViewer", "as_volume", "show"]

WINDOW_CHOICES = ("auto", *WINDOWS, "mammography", "dicom", "full")


def show(
    source: Any,
    *,
    findings: Any = None,
    predictions: Any = None,
    window: str | tuple[float, float] = "auto",
    view: str = "axial",
    settings: Settings | None = None,
    snapshot: Any = None,
    size: int = 512,
) -> VolumeViewer:
    """A viewer of a series (its pseudonymous UID, read from the catalog), a
    :class:`~gai_research.data.volume.Volume` or a MONAI MetaTensor from ``load_series``.

    ``findings`` / ``predictions``: a DataFrame or dicts with ``x_mm, y_mm, z_mm``
    (LPS) and ``diameter_mm`` (or ``volume_ml``), or ``row_px, col_px`` for 2-D images;
    ``score``/``name`` label them. ``window``: a preset name (lung, mediastinum, brain,
    stroke, bone, mammography, auto, dicom, full) or ``(centre, width)``.
    """
    if isinstance(source, str):
        volume = read_series(source, settings=settings, snapshot=snapshot)
    else:
        volume = as_volume(source)
    return VolumeViewer(
        volume, findings=findings, predictions=predictions, window=window, view=view, size=size
    )


def as_volume(value: Any) -> Volume:
    """A :class:`Volume` from a Volume or a MetaTensor (a channel of one is dropped)."""
    if isinstance(value, Volume):
        return value
    if not hasattr(value, "affine") or not hasattr(value, "meta"):
        raise VolumeError(
            f"cannot show a {type(value).__name__}",
            hint="pass a series UID, a Volume (read_series) or a MetaTensor (load_series)",
        )
    array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise VolumeError(
            f"cannot show an array of shape {tuple(array.shape)}",
            hint="pass one volume (X, Y, Z), or (1, X, Y, Z) with one channel",
        )
    affine = np.asarray(
        value.affine.detach().cpu().numpy() if hasattr(value.affine, "detach") else value.affine
    )
    meta = dict(value.meta)
    meta["space"] = check_space(meta.get("space", "RAS"))
    return Volume(array.astype(np.float32, copy=False), affine.astype(np.float64), meta)


class VolumeViewer:
    """The widget and its state; ``widget`` is the ipywidgets box."""

    def __init__(
        self,
        volume: Volume,
        *,
        findings: Any = None,
        predictions: Any = None,
        window: str | tuple[float, float] = "auto",
        view: str = "axial",
        size: int = 512,
    ) -> None:
        import ipywidgets as w

        self.volume = volume
        self.size = size
        self.affine_lps = volume.affine if volume.space == "LPS" else LPS_TO_RAS @ volume.affine
        self.is_image = volume.meta.get("geometry") == "image" or volume.shape[2] == 1
        sops = volume.meta.get("sop_uids") or ()
        common = {"affine": volume.affine, "space": volume.space, "sop_uids": sops}
        self.marks: list[Mark] = marks_from(findings, colour=FINDING_COLOUR, **common) + marks_from(
            predictions, colour=PREDICTION_COLOUR, **common
        )
        self.invert = volume.meta.get("photometric_interpretation") == "MONOCHROME1"
        self._window = resolve_window(window, volume.array, volume.meta)
        views = ("axial",) if self.is_image else VIEWS
        choices = list(WINDOW_CHOICES)
        if not isinstance(window, str):
            choices.insert(0, "custom")
        elif window.lower() not in choices:
            raise VolumeError(
                f"unknown window {window!r}", hint=f"use one of {', '.join(WINDOW_CHOICES)}"
            )
        self.view_buttons = w.ToggleButtons(
            options=views, value=views[0] if view not in views else view
        )
        self.window_menu = w.Dropdown(
            options=choices,
            value="custom" if not isinstance(window, str) else window.lower(),
            description="window",
        )
        self.slider = w.IntSlider(
            min=0, max=1, value=0, description="slice", continuous_update=True
        )
        self.goto = w.Dropdown(options=self._goto_options(), value=None, description="go to")
        self.image = w.Image(format="png")
        self.info = w.HTML()
        self._layout = self._new_layout()
        self._set_slider(self._start_index())
        self.view_buttons.observe(self._on_view, names="value")
        self.window_menu.observe(self._on_window, names="value")
        self.slider.observe(lambda _: self.refresh(), names="value")
        self.goto.observe(self._on_goto, names="value")
        controls = w.HBox([self.view_buttons, self.window_menu, self.goto])
        self.widget = w.VBox([controls, self.slider, self.image, self.info])
        self.refresh()

    # --- state ---------------------------------------------------------------------------
    @property
    def view(self) -> str:
        return self.view_buttons.value

    @property
    def index(self) -> int:
        return int(self.slider.value)

    @property
    def window(self) -> tuple[float, float]:
        return self._window

    @property
    def png(self) -> bytes:
        """The picture now shown."""
        return bytes(self.image.value)

    def set_window(self, window: str | tuple[float, float]) -> None:
        """A preset name or (centre, width)."""
        if isinstance(window, str):
            self.window_menu.value = window.lower()  # refreshes through the observer
        else:
            self._window = resolve_window(window, self.volume.array, self.volume.meta)
            if "custom" not in self.window_menu.options:
                self.window_menu.options = ("custom", *self.window_menu.options)
            with self.window_menu.hold_trait_notifications():
                self.window_menu.value = "custom"
            self.refresh()

    def marks_on_slice(self) -> list[Mark]:
        """The findings and predictions the shown slice cuts."""
        return [m for m in self.marks if radius_on_slice(m, self._layout, self.index) is not None]

    def refresh(self) -> None:
        layout = self._layout
        self.image.value = render_png(
            self.volume.array,
            layout,
            self.index,
            self._window,
            self.marks,
            invert=self.invert,
            max_side=self.size,
        )
        on = self.marks_on_slice()
        labels = ", ".join(m.text or "finding" for m in on)
        centre, width = self._window
        self.info.value = (
            f"{self.volume.meta.get('modality', '')} {self.view} slice {self.index + 1}/"
            f"{layout.n_slices} &middot; window {centre:g}/{width:g}"
            + (f" &middot; {len(on)} here: {labels}" if on else "")
        )

    def _repr_mimebundle_(self, **kwargs: Any):
        return self.widget._repr_mimebundle_(**kwargs)

    # --- events --------------------------------------------------------------------------
    def _new_layout(self):
        return plane_layout(self.affine_lps, self.volume.shape, self.view, image=self.is_image)

    def _set_slider(self, index: int) -> None:
        with self.slider.hold_trait_notifications():
            self.slider.max = max(self._layout.n_slices - 1, 0)
            self.slider.value = int(np.clip(index, 0, self.slider.max))

    def _start_index(self) -> int:
        if self.marks and not self.is_image:
            return round(self.marks[0].centre[self._layout.slice_axis])
        return self._layout.n_slices // 2

    def _on_view(self, _change) -> None:
        self._layout = self._new_layout()
        self._set_slider(self._start_index())
        self.refresh()

    def _on_window(self, change) -> None:
        if change["new"] != "custom":
            self._window = resolve_window(change["new"], self.volume.array, self.volume.meta)
        self.refresh()

    def _goto_options(self) -> list[tuple[str, int]]:
        kinds = {FINDING_COLOUR: "finding", PREDICTION_COLOUR: "prediction"}
        return [
            (f"{i + 1}. {kinds.get(m.colour, 'mark')} {m.text}".strip(), i)
            for i, m in enumerate(self.marks)
        ]

    def _on_goto(self, change) -> None:
        if change["new"] is None or self.is_image:
            return
        mark = self.marks[change["new"]]
        self.slider.value = int(
            np.clip(round(mark.centre[self._layout.slice_axis]), 0, self.slider.max)
        )
