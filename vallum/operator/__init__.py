"""The AI operator: watches every request, learns each principal's normal, alerts on and
contains abuse, and keeps capacity and the compute pool ahead of load.

events -> signals (sliding windows) -> detectors (baseline + rules) -> alerts -> containment.
"""
