// .tgv reader (docs/bitstream.md): every byte is hostile, every size checked before it is used.
#include "tgvc/bitstream.h"

#include <algorithm>
#include <set>

namespace tgvc {

namespace {

uint32_t u32(const uint8_t* p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

[[noreturn]] void fail(const std::string& what) { throw BitstreamError(what); }

}  // namespace

uint32_t read_uleb(const uint8_t* data, std::size_t size, std::size_t& pos, const char* what) {
    uint64_t value = 0;
    for (int i = 0; i < 5; ++i) {
        if (pos >= size) fail(std::string("truncated .tgv stream: ") + what + " is incomplete");
        const uint8_t byte = data[pos++];
        value |= (uint64_t)(byte & 0x7F) << (7 * i);
        if (!(byte & 0x80)) {
            if (value > 0xFFFFFFFFull) break;
            return (uint32_t)value;
        }
    }
    fail(std::string("corrupt .tgv stream: ") + what + " is not a valid 32-bit varint");
}

namespace {

StreamHeader parse_header(const Span& s) {
    const uint8_t* p = s.data;
    std::size_t pos = 0;
    StreamHeader h;
    const uint32_t width = read_uleb(p, s.size, pos, "header width");
    const uint32_t height = read_uleb(p, s.size, pos, "header height");
    h.fps_num = read_uleb(p, s.size, pos, "header fps_num");
    h.fps_den = read_uleb(p, s.size, pos, "header fps_den");
    h.num_frames = read_uleb(p, s.size, pos, "header num_frames");
    const uint32_t codec = read_uleb(p, s.size, pos, "header keyframe_codec");
    const uint32_t flags = read_uleb(p, s.size, pos, "header flags");
    if (s.size - pos < 20) fail("corrupt .tgv stream: HEADER too short");
    std::copy(p + pos, p + pos + 16, h.model_set_hash);
    h.noise_seed = u32(p + pos + 16);
    pos += 20;
    h.num_keyframes = read_uleb(p, s.size, pos, "header num_keyframes");
    h.num_groups = read_uleb(p, s.size, pos, "header num_groups");
    if (pos != s.size) fail("corrupt .tgv stream: HEADER has trailing bytes");
    if (width > kMaxDimension || height > kMaxDimension || codec > 255 || flags > 255)
        fail("corrupt .tgv stream: header field out of range");
    h.width = (uint16_t)width;
    h.height = (uint16_t)height;
    h.keyframe_codec = (uint8_t)codec;
    h.flags = (uint8_t)flags;
    if (h.num_keyframes < 1 || h.num_keyframes > h.num_frames || h.num_groups < 1 || h.num_groups > h.num_frames)
        fail("corrupt .tgv stream: keyframe/group counts out of range");
    if (h.width < 1 || h.width > kMaxDimension || h.height < 1 || h.height > kMaxDimension)
        fail("corrupt .tgv stream: picture size out of range");
    if (h.num_frames < 1 || h.num_frames > kMaxFrames) fail("corrupt .tgv stream: frame count out of range");
    if (h.fps_num == 0 || h.fps_den == 0) fail("corrupt .tgv stream: zero frame rate");
    return h;
}

void check_structure(const Stream& st) {
    const StreamHeader& h = st.header;
    if (st.keyframes.size() != h.num_keyframes || st.groups.size() != h.num_groups)
        fail("corrupt .tgv stream: section counts do not match the header");
    std::set<uint32_t> keys;
    for (const auto& k : st.keyframes) {
        if (k.frame >= h.num_frames) fail("corrupt .tgv stream: keyframe index out of range");
        if (!keys.insert(k.frame).second) fail("corrupt .tgv stream: duplicate keyframe");
    }
    uint32_t expect = 0;
    for (std::size_t g = 0; g < st.groups.size(); ++g) {
        const auto& gr = st.groups[g];
        if (gr.start != expect) fail("corrupt .tgv stream: groups are not contiguous");
        if (gr.end >= h.num_frames || (gr.end <= gr.start && h.num_frames > 1))
            fail("corrupt .tgv stream: group range out of order");
        if (!keys.count(gr.start) || !keys.count(gr.end)) fail("corrupt .tgv stream: group without its keyframes");
        expect = gr.end;
    }
    if (!st.groups.empty() && expect != h.num_frames - 1) fail("corrupt .tgv stream: groups do not cover the clip");
}

}  // namespace

uint32_t crc32(const uint8_t* data, std::size_t size, uint32_t crc) {
    static uint32_t table[256];
    static bool ready = false;
    if (!ready) {
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = true;
    }
    crc = ~crc;
    for (std::size_t i = 0; i < size; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

Stream read_stream(const uint8_t* data, std::size_t size) {
    if (size < 6) fail("not a .tgv stream (too short)");
    if (data[0] != 'T' || data[1] != 'G' || data[2] != 'V' || data[3] != 'C') fail("not a .tgv stream (bad magic)");
    Stream st;
    st.major = data[4];
    st.minor = data[5];
    if (st.major != 1) fail(".tgv version " + std::to_string(st.major) + "." + std::to_string(st.minor) + " is not supported (reads 1.x)");
    std::size_t pos = 6;
    bool have_header = false, ended = false;
    while (!ended) {
        if (pos >= size) fail("truncated .tgv stream: no END section");
        const uint8_t type = data[pos];
        std::size_t start = pos + 1;
        const uint32_t length = read_uleb(data, size, start, "section length");
        if (length > kMaxSectionBytes) fail("corrupt .tgv stream: section at byte " + std::to_string(pos) + " claims " + std::to_string(length) + " bytes");
        if (size - start < (std::size_t)length + 4) fail("truncated .tgv stream: section at byte " + std::to_string(pos) + " is cut");
        const std::size_t end = start + length;
        if (crc32(data + pos, end - pos) != u32(data + end)) fail("corrupt .tgv stream: CRC mismatch in section at byte " + std::to_string(pos));
        const Span payload{data + start, length};
        if (!have_header && type != kHeader) fail("corrupt .tgv stream: the first section is not the HEADER");
        switch (type) {
            case kHeader:
                if (have_header) fail("corrupt .tgv stream: second HEADER");
                st.header = parse_header(payload);
                have_header = true;
                break;
            case kKeyframe: {
                if (st.keyframes.size() >= st.header.num_keyframes) fail("corrupt .tgv stream: more keyframes than the header says");
                std::size_t at = 0;
                const uint32_t frame = read_uleb(payload.data, length, at, "keyframe index");
                st.keyframes.push_back({frame, {payload.data + at, length - at}});
                break;
            }
            case kGroup: {
                if (st.groups.size() >= st.header.num_groups) fail("corrupt .tgv stream: more groups than the header says");
                std::size_t at = 0;
                const uint32_t first = read_uleb(payload.data, length, at, "group start");
                const uint32_t last = read_uleb(payload.data, length, at, "group end");
                st.groups.push_back({first, last, {payload.data + at, length - at}});
                break;
            }
            case kEnd:
                if (length != 0) fail("corrupt .tgv stream: END section is not empty");
                ended = true;
                break;
            default:
                ++st.skipped_sections;
        }
        pos = end + 4;
    }
    if (pos != size) fail("corrupt .tgv stream: " + std::to_string(size - pos) + " trailing bytes after the end");
    check_structure(st);
    return st;
}

}  // namespace tgvc
