"""The report: a scorecard beside the published numbers, provenance, data health, training and the
temporal and spatial diagnostics, on one page (`page.build_report`), from files the pipeline wrote."""
