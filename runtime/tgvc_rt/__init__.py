"""tgvc-rt: trajectory-guided generative video coding runtime (T-GVC, arXiv 2507.07633)."""

__version__ = "0.1.0"
