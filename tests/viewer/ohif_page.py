"""Driving OHIF 3.13 in Playwright and reading back what it shows.

OHIF's own objects are on ``window`` once a viewer route is up (extensions/cornerstone's init sets
``window.services``, ``window.cornerstone`` and ``window.cornerstoneTools``): the display set,
segmentation, viewport and notification services and the Cornerstone3D cache and metadata.
The probes below read the *rendered state* from there (labelmap images, the Parametric Map volume,
the SR measurements) and return plain numbers keyed by the source SOP Instance UID, which the test
maps back to slice indices (tests/viewer/dicom_truth.py).  The user actions are real clicks in the
series list and the dialogs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
#: SwiftShader gives headless Chromium the WebGL that Cornerstone3D renders with
CHROMIUM_ARGS = ["--no-sandbox", "--use-gl=swiftshader", "--enable-unsafe-swiftshader", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1440, "height": 900}
STEP_TIMEOUT_MS = 180_000
#: where the screenshots go; ADAPTCLIP_OHIF_SHOTS=docs/images refreshes the ones in the docs
SHOTS = Path(os.environ.get("ADAPTCLIP_OHIF_SHOTS", Path(__file__).resolve().parents[2] / "test-output" / "ohif"))

#: OHIF shows a guided tour on a first visit; mark it seen so it does not cover the viewport
SKIP_TOUR = "localStorage.setItem('shownTours', JSON.stringify(['basicViewerTour']));"

#: Wrap the notification service (toasts such as "RecommendedDisplayCIELabValue not found ...")
#: so that every notification OHIF shows is recorded in window.__ohifNotifications.
RECORD_NOTIFICATIONS = """() => {
  const service = window.services.uiNotificationService;
  if (service.__recorded) return;
  window.__ohifNotifications = [];
  const show = service.show.bind(service);
  service.show = (options) => { window.__ohifNotifications.push({type: options.type || 'info', title: String(options.title || ''),
                                                                    message: String(options.message || '')}); return show(options); };
  service.__recorded = true;
}"""

DISPLAY_SETS = """() => window.services.displaySetService.getActiveDisplaySets().map(d => ({
  uid: d.displaySetInstanceUID, modality: d.Modality, description: d.SeriesDescription || '',
  seriesNumber: d.SeriesNumber, isLoaded: Boolean(d.isLoaded), sopClassUid: d.SOPClassUID}))"""

#: voxels of each labelmap image of a segmentation, keyed by the SOP UID of the image it overlays
SEG_VOXELS = """(segmentationId) => {
  const cs = window.cornerstone;
  const seg = window.services.segmentationService.getSegmentation(segmentationId);
  if (!seg || !seg.representationData.Labelmap) return null;
  const labelmap = seg.representationData.Labelmap;
  const counts = {};
  labelmap.imageIds.forEach((imageId, i) => {
    const image = cs.cache.getImage(imageId);
    const pixels = image.voxelManager ? image.voxelManager.getScalarData() : image.getPixelData();
    let n = 0;
    for (let j = 0; j < pixels.length; j++) if (pixels[j]) n++;
    const sop = cs.metaData.get('sopCommonModule', labelmap.referencedImageIds[i]).sopInstanceUID;
    counts[sop] = (counts[sop] || 0) + n;
  });
  return counts;
}"""

SEGMENTATION_IDS = "() => window.services.segmentationService.getSegmentations().map(s => s.segmentationId)"

#: (sum, max, x centroid, y centroid) of every slice of the loaded Parametric Map volume, keyed by
#: the SOP UID of the source image at that slice of the referenced volume (same numbers as
#: dicom_truth.slice_signature computes from the file)
PMAP_SLICES = """(displaySetUid) => {
  const cs = window.cornerstone;
  const pmap = window.services.displaySetService.getDisplaySetByUID(displaySetUid);
  if (!pmap || !pmap.isLoaded) return null;  // set once the values are in the volume
  const volume = cs.cache.getVolume(displaySetUid);
  const reference = cs.cache.getVolume(pmap.getReferencedVolumeId());
  if (!volume || !reference) return null;
  const [nx, ny, nz] = volume.dimensions;
  const data = volume.voxelManager.getCompleteScalarDataArray();
  const out = {};
  for (let k = 0; k < nz; k++) {
    let sum = 0, max = 0, sx = 0, sy = 0;
    for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) {
      const v = data[k * nx * ny + y * nx + x];
      sum += v; if (v > max) max = v; sx += v * x; sy += v * y;
    }
    const sop = cs.metaData.get('sopCommonModule', reference.imageIds[k]).sopInstanceUID;
    out[sop] = sum > 0 ? [sum, max, sx / sum, sy / sum] : [0, max, 0, 0];
  }
  return out;
}"""

#: the measurements OHIF parsed from an SR display set (one per tracking UID, groups merged): whether
#: it was placed on an image, its tracking identifier, its label lines, graphic type and points, and
#: the SOP UID of the image it is drawn on
SR_MEASUREMENTS = """(displaySetUid) => {
  const ds = window.services.displaySetService.getDisplaySetByUID(displaySetUid);
  if (!ds || !ds.isLoaded) return null;
  return (ds.measurements || []).map(m => {
    const coord = (m.coords || [])[0] || {};
    const ref = coord.ReferencedSOPSequence || {};
    return {loaded: Boolean(m.loaded), trackingIdentifier: m.TrackingIdentifier || '',
            labels: (m.labels || []).map(l => [String(l.label), String(l.value)]),
            graphicType: coord.GraphicType || '', points: Array.from(coord.GraphicData || []),
            sop: m.ReferencedSOPInstanceUID || ref.ReferencedSOPInstanceUID || ''};
  });
}"""

#: the text Cornerstone draws next to annotations in the viewport (SVG layer)
ANNOTATION_TEXT = """() => [...document.querySelectorAll('[data-cy="viewport-pane"] svg text')].map(t => t.textContent)"""

#: OHIF's error boundary ("Something went wrong") replaced a viewport or the route
ERROR_BOUNDARY = """() => document.body.innerText.includes('Something went wrong')"""

#: the SOP UID of the image the first viewport shows now
CURRENT_SOP = """() => {
  const vp = window.services.cornerstoneViewportService.getCornerstoneViewport(
      window.services.viewportGridService.getActiveViewportId());
  const imageId = vp && vp.getCurrentImageId && vp.getCurrentImageId();
  return imageId ? window.cornerstone.metaData.get('sopCommonModule', imageId).sopInstanceUID : null;
}"""

#: scroll the active viewport, slice by slice, until it shows the image with the given SOP UID
JUMP_TO_SOP = """async (sop) => {
  const vp = window.services.cornerstoneViewportService.getCornerstoneViewport(
      window.services.viewportGridService.getActiveViewportId());
  if (!vp) return false;
  const n = vp.getNumberOfSlices ? vp.getNumberOfSlices() : vp.getImageIds().length;
  const shown = () => window.cornerstone.metaData.get('sopCommonModule', vp.getCurrentImageId()).sopInstanceUID;
  for (let i = 0; i < n; i++) {
    await window.cornerstone.utilities.jumpToSlice(vp.element, {imageIndex: i});
    if (shown() === sop) { vp.render(); return true; }
  }
  return false;
}"""


@dataclass
class PageWatch:
    """Console errors (and error-boundary catches) and uncaught page errors seen by one page."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def attach(self, page) -> PageWatch:
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)[:300]))
        return self

    def _on_console(self, message) -> None:
        # OHIF logs a React error boundary's catch at *debug* level ("Route viewer Error Boundary ...")
        if message.type == "error" or "Error Boundary" in message.text:
            self.console_errors.append(message.text[:300])

    def problems(self) -> list[str]:
        return ([f"console error: {e}" for e in self.console_errors] + [f"page error: {e}" for e in self.page_errors])


def open_study(page, viewer_url: str, expected_series: int, timeout_ms: int) -> list[dict]:
    """Open the viewer on one study; wait until its series are listed and the first image is drawn;
    returns the display sets."""
    page.goto(viewer_url)
    page.wait_for_function(f"() => window.services && window.services.displaySetService"
                           f" && window.services.displaySetService.getActiveDisplaySets().length >= {expected_series}",
                           timeout=timeout_ms)
    page.evaluate(RECORD_NOTIFICATIONS)
    page.wait_for_function(CURRENT_SOP, timeout=timeout_ms)
    return page.evaluate(DISPLAY_SETS)


def notifications(page) -> list[dict]:
    return page.evaluate("() => window.__ohifNotifications || []")


def load_series(page, description: str) -> None:
    """Double-click a series in the study browser, as a reader does, to open it in the viewport."""
    page.locator("[data-cy='study-browser-thumbnail'], [data-cy='study-browser-thumbnail-no-image']") \
        .filter(has_text=description).first.dblclick()
