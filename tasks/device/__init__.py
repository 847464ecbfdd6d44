"""Device-model fitting (issue 20): synthetic Gummel lab, weighted log-current fits, uncertainties."""
