"""Baselines: transparent reference algorithms, one per disease task, named ``baseline-*``.

Each is a small, documented image-processing algorithm (numpy and scipy.ndimage, no
training, no torch) that runs in about a second per study on a CPU, reads only pixels
(never labels or private tags), and says what it saw in :class:`Prediction.raw` (its
parameters and the features of its candidates). They give every evaluation a floor to
compare vendor products against and exercise the whole model pipeline end to end.
Their ``ModelInfo`` says ``origin=baseline`` and ``regulatory.status="research-only"``:
reports never present them as a vendor's result.

======================================  ================  ==============  ==============
name (entry point)                      task              kind            module
======================================  ================  ==============  ==============
``baseline-lung-nodule-ct``             lung_nodule_ct    detection       ``lung_ct``
``baseline-chest-xray``                 lung_nodule_dx    classification  ``chest_dx``
``baseline-mammography``                breast_mg         classification  ``breast_mg``
``baseline-hippocampal-volume``         dementia_mr       volumetry       ``brain_mr``
``baseline-hemorrhage-ct``              stroke_ct         triage          ``brain_ct``
======================================  ================  ==============  ==============

Load one by name through the registry (``gai_research.models.registry.load_model``) or
call the module's ``create(**options)``; options are the fields of the module's
``Params`` (docs/baselines.md lists them). Importing this package is cheap: numpy and
scipy load on the first prediction.
"""

from __future__ import annotations

__all__ = ["BASELINES"]

#: Entry-point name -> ``module:callable``, as registered in pyproject.toml.
BASELINES: dict[str, str] = {
    "baseline-lung-nodule-ct": "gai_research.models.baselines.lung_ct:create",
    "baseline-chest-xray": "gai_research.models.baselines.chest_dx:create",
    "baseline-mammography": "gai_research.models.baselines.breast_mg:create",
    "baseline-hippocampal-volume": "gai_research.models.baselines.brain_mr:create",
    "baseline-hemorrhage-ct": "gai_research.models.baselines.brain_ct:create",
}
