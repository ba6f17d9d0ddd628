"""SBOMs: a package's facts (`describe`) and the image's documents (`documents`)."""
