"""Caps on what a .tgv stream may ask a decoder for, checked while the stream is parsed.

Each check runs on numbers read from the stream (the header, a group section's first bytes) before
the decoder allocates anything for them, so a crafted stream with valid CRCs cannot make it reserve
gigabytes: the decoder holds one keyframe group at a time (and works on it in windows of frames); a
reader that makes a whole group at once needs arrays that grow with the group's frames x pixels,
which ``pixels_per_group`` bounds (spec: docs/bitstream.md, "Caps").
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import BitstreamError
from .header import StreamHeader
from .varint import read_uleb


@dataclass(frozen=True)
class StreamCaps:
    """Limits a reader enforces (the defaults are safe for untrusted input); ``write_bitstream`` refuses
    a stream a reader with the same caps would refuse."""

    frames_per_group: int = 1024
    """Frames of one keyframe group, both keyframes included (the encoder's --max-gap goes to 1000)."""
    pixels_per_frame: int = 8192 * 8192
    """width x height of a frame (8K UHD is 7680 x 4320)."""
    pixels_per_group: int = 1 << 28
    """frames x width x height of one group: the memory of a reader that makes a whole group at once grows
    with it (its output frames alone take 3 bytes each, 768 MiB at the cap; the decoder's windows do not);
    a 16-frame group (the default --max-gap 15) of 4096 x 4096 frames fits exactly."""
    tracks_per_group: int = 65535
    """Tracks a group's trajectory payload declares (the trajectory coder's own limit)."""
    track_points_per_group: int = 1 << 22
    """Tracks x frames of one group: the decoded positions take 8 bytes a point (32 MiB at the cap) and the
    dense motion built from them a few times that; an encoder's few hundred tracks over a 1000-frame group
    stay far below it."""
    sections: int = 1 << 21
    """Sections in the stream, header and end included (a stream has one per keyframe and group)."""

    def check_header(self, header: StreamHeader) -> None:
        """The frame size, and the sections the header's keyframe and group counts imply."""
        pixels = header.width * header.height
        if pixels > self.pixels_per_frame:
            _exceeds(f"{header.width}x{header.height} frames have {pixels} pixels", "pixels_per_frame",
                     self.pixels_per_frame)
        promised = header.num_keyframes + header.num_groups + 2
        if promised > self.sections:
            _exceeds(f"the header promises {promised} sections", "sections", self.sections)

    def check_sections(self, count: int) -> None:
        """``count`` sections read so far."""
        if count > self.sections:
            _exceeds(f"the stream has more than {self.sections} sections", "sections", self.sections)

    def check_group(self, header: StreamHeader, start: int, end: int, tracks: bytes) -> None:
        """A group's frame count, its frames x pixels, and the track count its payload starts with (alone and
        times the frames)."""
        frames = end - start + 1
        if frames > self.frames_per_group:
            _exceeds(f"group {start}..{end} has {frames} frames", "frames_per_group", self.frames_per_group)
        pixels = frames * header.width * header.height
        if pixels > self.pixels_per_group:
            _exceeds(f"group {start}..{end} has {frames} frames of {header.width}x{header.height} = {pixels} "
                     f"pixels", "pixels_per_group", self.pixels_per_group)
        if tracks:  # an empty payload is the trajectory decoder's error (it needs its count)
            count, _ = read_uleb(tracks, 0, f"track count of group {start}..{end}")
            if count > self.tracks_per_group:
                _exceeds(f"group {start}..{end} declares {count} tracks", "tracks_per_group",
                         self.tracks_per_group)
            if count * frames > self.track_points_per_group:
                _exceeds(f"group {start}..{end} declares {count} tracks over {frames} frames = {count * frames} "
                         f"points", "track_points_per_group", self.track_points_per_group)


def _exceeds(what: str, cap: str, limit: int) -> None:
    raise BitstreamError(f".tgv stream exceeds a cap: {what}, over {cap} = {limit}")
