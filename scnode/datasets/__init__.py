"""Loaders that return AnnData."""

from ._synthetic import second_order_coefficients, second_order_system

__all__ = ["second_order_coefficients", "second_order_system"]
