"""Accuracy of glacier maps: pixel scores, area and boundary deviation, calibration.

Numpy/scipy/sklearn/shapely only; never imports torch.

* :mod:`~glacierkit.metrics.segmentation`: :class:`ConfusionMatrix` (accumulated over
  tiles/scenes) → IoU, precision, recall, F1, overall accuracy, macro-F1.
* :mod:`~glacierkit.metrics.outlines`: :func:`evaluate_outlines` (rasters or polygons) → the
  scores plus area deviation (km², %) and boundary distances (m).
* :mod:`~glacierkit.metrics.calibration`: ECE, reliability bins, calibration maps
  (temperature, isotonic, none) with a JSON-serialisable form.
* :mod:`~glacierkit.metrics.area`: :func:`area_with_interval`, the expected glacier area of a
  calibrated probability map with a block interval (ICEmapper's block bootstrap or the
  calibrated-probability "bernoulli-blocks" interval).
"""

from glacierkit.metrics.area import AREA_METHODS, area_with_interval
from glacierkit.metrics.calibration import (
    CALIBRATION_MAPS,
    CalibrationMap,
    IdentityCalibration,
    IsotonicCalibration,
    ReliabilityBins,
    TemperatureScaling,
    calibration_from_dict,
    class_axis,
    compare_calibrations,
    confidence_from_probabilities,
    expected_calibration_error,
    logits_from_probabilities,
    nll,
    reliability_bins,
    softmax,
)
from glacierkit.metrics.outlines import (
    area_deviation,
    evaluate_outlines,
    mask_area_km2,
    mask_boundary,
    pixel_area_m2,
    pixel_sampling_m,
    polygon_boundary_distances,
    raster_boundary_distances,
    sample_boundary,
    summarize_boundary_distances,
)
from glacierkit.metrics.segmentation import IGNORE_INDEX, ConfusionMatrix, segmentation_scores

__all__ = [
    "AREA_METHODS",
    "CALIBRATION_MAPS",
    "IGNORE_INDEX",
    "CalibrationMap",
    "ConfusionMatrix",
    "IdentityCalibration",
    "IsotonicCalibration",
    "ReliabilityBins",
    "TemperatureScaling",
    "area_deviation",
    "area_with_interval",
    "calibration_from_dict",
    "class_axis",
    "compare_calibrations",
    "confidence_from_probabilities",
    "evaluate_outlines",
    "expected_calibration_error",
    "logits_from_probabilities",
    "mask_area_km2",
    "mask_boundary",
    "nll",
    "pixel_area_m2",
    "pixel_sampling_m",
    "polygon_boundary_distances",
    "raster_boundary_distances",
    "reliability_bins",
    "sample_boundary",
    "segmentation_scores",
    "softmax",
    "summarize_boundary_distances",
]
