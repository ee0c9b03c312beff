"""Loaders that return AnnData."""

from ._boolode import (
    BooleanModel,
    boolean_model,
    krumsiek11_boolean,
    random_boolean_model,
    rules_model,
    simulate_boolean,
)
from ._hematopoiesis import hematopoiesis, hematopoiesis_base_grn
from ._krumsiek11 import krumsiek11, krumsiek11_network
from ._mocap import mocap
from ._paul15 import paul15
from ._synthetic import second_order_coefficients, second_order_system
from ._tfs import tf_list

__all__ = [
    "BooleanModel",
    "boolean_model",
    "hematopoiesis",
    "hematopoiesis_base_grn",
    "krumsiek11",
    "krumsiek11_boolean",
    "krumsiek11_network",
    "mocap",
    "paul15",
    "random_boolean_model",
    "rules_model",
    "second_order_coefficients",
    "second_order_system",
    "simulate_boolean",
    "tf_list",
]
