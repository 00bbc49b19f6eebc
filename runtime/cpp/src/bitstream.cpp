// .tgv reader (docs/bitstream.md): every byte is hostile, every size checked before it is used.
#include "tgvc/bitstream.h"

#include <algorithm>
#include <set>

namespace tgvc {

namespace {

uint32_t u16(const uint8_t* p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }
uint32_t u32(const uint8_t* p) { return u16(p) | (u16(p + 2) << 16); }
uint64_t u64(const uint8_t* p) { return (uint64_t)u32(p) | ((uint64_t)u32(p + 4) << 32); }

[[noreturn]] void fail(const std::string& what) { throw BitstreamError(what); }

StreamHeader parse_header(const Span& s) {
    if (s.size != 50) fail("corrupt .tgv stream: HEADER is " + std::to_string(s.size) + " bytes, expected 50");
    const uint8_t* p = s.data;
    StreamHeader h;
    h.width = (uint16_t)u16(p);
    h.height = (uint16_t)u16(p + 2);
    h.fps_num = u32(p + 4);
    h.fps_den = u32(p + 8);
    h.num_frames = u32(p + 12);
    h.keyframe_codec = p[16];
    h.flags = p[17];
    std::copy(p + 18, p + 34, h.model_set_hash);
    h.noise_seed = u64(p + 34);
    h.num_keyframes = u32(p + 42);
    h.num_groups = u32(p + 46);
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
        if (size - pos < 6) fail("truncated .tgv stream: section header at byte " + std::to_string(pos) + " is incomplete");
        const uint8_t type = data[pos];
        const uint32_t length = u32(data + pos + 2);
        if (length > kMaxSectionBytes) fail("corrupt .tgv stream: section at byte " + std::to_string(pos) + " claims " + std::to_string(length) + " bytes");
        if (size - pos - 6 < (std::size_t)length + 4) fail("truncated .tgv stream: section at byte " + std::to_string(pos) + " is cut");
        const std::size_t end = pos + 6 + length;
        if (crc32(data + pos, 6 + length) != u32(data + end)) fail("corrupt .tgv stream: CRC mismatch in section at byte " + std::to_string(pos));
        if (data[pos + 1] != 0) fail("corrupt .tgv stream: non-zero section flags");
        const Span payload{data + pos + 6, length};
        if (!have_header && type != kHeader) fail("corrupt .tgv stream: the first section is not the HEADER");
        switch (type) {
            case kHeader:
                if (have_header) fail("corrupt .tgv stream: second HEADER");
                st.header = parse_header(payload);
                have_header = true;
                break;
            case kKeyframe:
                if (length < 4) fail("corrupt .tgv stream: KEYFRAME section too short");
                st.keyframes.push_back({u32(payload.data), {payload.data + 4, length - 4u}});
                if (st.keyframes.size() > st.header.num_keyframes) fail("corrupt .tgv stream: more keyframes than the header says");
                break;
            case kGroup:
                if (length < 8) fail("corrupt .tgv stream: GROUP section too short");
                st.groups.push_back({u32(payload.data), u32(payload.data + 4), {payload.data + 8, length - 8u}});
                if (st.groups.size() > st.header.num_groups) fail("corrupt .tgv stream: more groups than the header says");
                break;
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
