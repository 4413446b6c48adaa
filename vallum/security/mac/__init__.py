"""Mandatory access control: labels, the dominance rules, and the labels stored on objects."""
