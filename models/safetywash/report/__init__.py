"""Tables, figures and the Markdown/HTML report of a fit (never imports PyMC)."""
