"""Data acquisition: hub downloads, archive unpacking, dataset layout, inventory."""
