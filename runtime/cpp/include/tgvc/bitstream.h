// Reader of the .tgv container (docs/bitstream.md, version 1.x): preamble, CRC-checked sections,
// the HEADER fields and the layout of keyframes and groups. Payloads are returned as spans into
// the caller's buffer (no copies); every size is checked before use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace tgvc {

struct BitstreamError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

enum SectionType : uint8_t { kHeader = 0x01, kKeyframe = 0x02, kGroup = 0x03, kEnd = 0x7F };

constexpr uint32_t kMaxSectionBytes = 256u << 20;
constexpr uint32_t kMaxDimension = 16384;
constexpr uint32_t kMaxFrames = 10000000;

struct Span {
    const uint8_t* data = nullptr;
    std::size_t size = 0;
};

struct StreamHeader {
    uint16_t width = 0, height = 0;
    uint32_t fps_num = 0, fps_den = 0, num_frames = 0;
    uint8_t keyframe_codec = 0, flags = 0;
    uint8_t model_set_hash[16] = {0};
    uint32_t noise_seed = 0;
    uint32_t num_keyframes = 0, num_groups = 0;
};

struct KeyframeSection {
    uint32_t frame = 0;
    Span coded;  // the coded image
};

struct GroupSection {
    uint32_t start = 0, end = 0;
    Span payload;  // trajectory payload (codec/trajectories.py)
};

struct Stream {
    uint8_t major = 0, minor = 0;
    StreamHeader header;
    std::vector<KeyframeSection> keyframes;
    std::vector<GroupSection> groups;
    std::size_t skipped_sections = 0;  // unknown types (a later minor version), CRC-checked
};

// Unsigned LEB128 varint of at most 32 bits at data[pos]; advances pos; throws BitstreamError.
uint32_t read_uleb(const uint8_t* data, std::size_t size, std::size_t& pos, const char* what);

// zlib's CRC-32.
uint32_t crc32(const uint8_t* data, std::size_t size, uint32_t crc = 0);

// Parses and validates a whole stream held in memory; throws BitstreamError (one line) on any
// truncation, CRC mismatch, cap violation, version or structure error.
Stream read_stream(const uint8_t* data, std::size_t size);

}  // namespace tgvc
