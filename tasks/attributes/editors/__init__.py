"""Attribute editors: one module per attribute, each registered in ``EDITORS`` (see base.py)."""

from trustflow.tasks.attributes.editors.base import EDITORS, EditResult, MaskedObject

__all__ = ["EDITORS", "EditResult", "MaskedObject"]
