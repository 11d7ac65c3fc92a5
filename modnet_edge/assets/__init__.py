"""Files shipped inside the package: built-in weights (weights/) and sample portraits (portraits/)."""
