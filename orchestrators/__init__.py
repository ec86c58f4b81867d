"""Deterministic workflows: they decide, activities act."""
