"""Loaders that return AnnData."""

from ._hematopoiesis import hematopoiesis, hematopoiesis_base_grn
from ._synthetic import second_order_coefficients, second_order_system

__all__ = ["hematopoiesis", "hematopoiesis_base_grn", "second_order_coefficients", "second_order_system"]
