"""Device measurements (issue 20): the Gummel-sweep layout, its reader and validation."""
