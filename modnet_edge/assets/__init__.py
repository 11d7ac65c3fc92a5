"""Files shipped inside the package: built-in weights (weights/) and the unseen photos every verdict defaults to (unseen/)."""
