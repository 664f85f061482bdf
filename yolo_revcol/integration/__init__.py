"""Ultralytics integration: module registration, YAML argument scaling, the start-up hook, safe-load allow-list.

Kept import-light (no torch, no Ultralytics) because the start-up hook imports ``.startup`` in every process.
"""
