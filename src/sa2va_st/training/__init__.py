"""Training (stage `train`): the recipe that sits above the model and the datasets."""
