"""Coverage-guided fuzz targets (atheris); see fuzz/run.py and fuzz/_common.py."""
