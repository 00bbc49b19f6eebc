"""The formats both pipelines share: keyframe payloads, trajectory payloads and reading a stream.

The encoder writes these formats and the decoder reads them; neither pipeline imports the other.
"""
