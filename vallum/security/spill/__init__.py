"""Spill prevention: classification markings found in content, and the guard that refuses them."""
