"""Image classifiers for robustness evaluation: inputs in [0, 1], ``Normalize`` first.

``CLASSIFIERS`` holds the architectures, ``load_classifier`` turns a spec string
(architecture with options, checkpoint, TorchScript) into a module; see ``spec.py`` for the
syntax and ``resolve.py`` for ``run:`` models kept in the artifact store.
"""

from trustflow.models.vision import efficientnet_lite as _efficientnet_lite  # noqa: F401  (registers efficientnet_lite0)
from trustflow.models.vision.architectures import CLASSIFIERS, Classifier, build_classifier
from trustflow.models.vision.layers import Normalize
from trustflow.models.vision.spec import classifier_spec, load_classifier, read_checkpoint, save_checkpoint

__all__ = [
    "CLASSIFIERS",
    "Classifier",
    "Normalize",
    "build_classifier",
    "classifier_spec",
    "load_classifier",
    "read_checkpoint",
    "save_checkpoint",
]
