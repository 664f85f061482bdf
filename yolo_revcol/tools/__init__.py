"""Command-line tools behind the ``yolo-revcol`` console command and the scripts in ``runs_scripts/``."""
