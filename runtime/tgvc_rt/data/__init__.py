"""Bundled sample clip (see LICENSE-carphone.txt)."""
from pathlib import Path

SAMPLE_CLIP = Path(__file__).with_name("carphone_qcif_48f.y4m")
