"""The formats both pipelines share: keyframe payloads, trajectory payloads and reading a stream.

The encoder writes these formats and the decoder reads them; neither pipeline imports the other
(tests/test_import_graph.py), and nothing here imports either. What the encoder decides (rate
searches, track selection) stays in ``encoder/``.

* ``keyframe_formats``: the header's keyframe codec ids and ``KeyframeReader``, one reader for all;
* ``keyframe_image``: keyframes as independent still pictures (AV1, HEVC, AVIF), downscaled when small;
* ``keyframe_sequence``: keyframes as one low-delay P-frame stream (AV1, HEVC), decoded in order;
* ``keyframe_segments``: the PyAV encoder sessions and decoders behind one segment of that stream;
* ``keyframe_units``, ``av1_obu``: the bytes a payload drops (AV1 headers, start codes) and their rebuild;
* ``trajectories``: the trajectory payload (``encode_tracks`` / ``decode_tracks``), with
  ``track_quantise`` (coding grid, instance motion, prediction) and ``track_entropy`` (range coding);
* ``stream``: a .tgv file's bytes, and the video its header describes.
"""
