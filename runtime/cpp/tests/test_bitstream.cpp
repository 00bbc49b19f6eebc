// .tgv reader on a tiny hand-made stream: parses, then rejects truncation, a flipped bit, a wrong
// version and trailing bytes.
#include <cstdio>
#include <cstring>
#include <vector>

#include "tgvc/bitstream.h"

namespace {
void put(std::vector<uint8_t>& b, uint64_t v, int n) { for (int i = 0; i < n; ++i) b.push_back((uint8_t)(v >> (8 * i))); }
void uleb(std::vector<uint8_t>& b, uint32_t v) {
    do { uint8_t byte = v & 0x7F; v >>= 7; b.push_back(byte | (v ? 0x80 : 0)); } while (v);
}
void section(std::vector<uint8_t>& out, uint8_t type, const std::vector<uint8_t>& payload) {
    std::vector<uint8_t> s{type};
    uleb(s, (uint32_t)payload.size());
    s.insert(s.end(), payload.begin(), payload.end());
    put(s, tgvc::crc32(s.data(), s.size()), 4);
    out.insert(out.end(), s.begin(), s.end());
}
std::vector<uint8_t> make_stream() {
    std::vector<uint8_t> b{'T', 'G', 'V', 'C', 1, 0}, h;
    uleb(h, 176); uleb(h, 144); uleb(h, 30); uleb(h, 1); uleb(h, 17); uleb(h, 1); uleb(h, 0);
    for (int i = 0; i < 16; ++i) h.push_back((uint8_t)i);
    put(h, 42, 4); uleb(h, 3); uleb(h, 2);
    section(b, tgvc::kHeader, h);
    section(b, tgvc::kKeyframe, {0, 0xAA, 0xBB});
    section(b, tgvc::kKeyframe, {8, 0xCC});
    section(b, tgvc::kGroup, {0, 8, 1, 2, 3});
    section(b, 0x40, {9, 9});  // unknown type: skipped after its CRC
    section(b, tgvc::kKeyframe, {16});
    section(b, tgvc::kGroup, {8, 16});
    section(b, tgvc::kEnd, {});
    return b;
}
bool rejects(std::vector<uint8_t> b) {
    try { tgvc::read_stream(b.data(), b.size()); } catch (const tgvc::BitstreamError&) { return true; }
    return false;
}
}  // namespace

// A stream written by the Python encoder (tests/data/golden_v1.tgv): parses with the expected fields.
int check_golden(const char* path) {
    std::FILE* f = std::fopen(path, "rb");
    if (!f) { std::printf("cannot open %s\n", path); return 1; }
    std::vector<uint8_t> b;
    uint8_t buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) b.insert(b.end(), buf, buf + n);
    std::fclose(f);
    try {
        tgvc::Stream s = tgvc::read_stream(b.data(), b.size());
        const bool ok = s.header.width == 176 && s.header.height == 144 && s.header.num_frames == 17 &&
                        s.header.noise_seed == 1 && s.header.keyframe_codec == 1 && s.keyframes.size() == 3 &&
                        s.groups.size() == 2 && s.groups.back().end == 16;
        std::printf(ok ? "golden ok\n" : "golden fields wrong\n");
        return ok ? 0 : 1;
    } catch (const tgvc::BitstreamError& e) {
        std::printf("golden stream rejected: %s\n", e.what());
        return 1;
    }
}

int main(int argc, char** argv) {
    if (argc > 1) return check_golden(argv[1]);
    int failures = 0;
    const uint8_t check[] = {'1', '2', '3', '4', '5', '6', '7', '8', '9'};
    if (tgvc::crc32(check, 9) != 0xCBF43926u) { std::printf("crc32 check value wrong\n"); ++failures; }
    std::vector<uint8_t> b = make_stream();
    try {
        tgvc::Stream s = tgvc::read_stream(b.data(), b.size());
        if (s.header.width != 176 || s.header.height != 144 || s.header.num_frames != 17 || s.header.noise_seed != 42 ||
            s.header.model_set_hash[15] != 15 || s.keyframes.size() != 3 || s.groups.size() != 2 ||
            s.groups[1].start != 8 || s.groups[1].end != 16 || s.groups[0].payload.size != 3 ||
            s.keyframes[0].coded.size != 2 || s.keyframes[0].coded.data[1] != 0xBB || s.skipped_sections != 1) {
            std::printf("parsed fields wrong\n");
            ++failures;
        }
    } catch (const tgvc::BitstreamError& e) {
        std::printf("valid stream rejected: %s\n", e.what());
        ++failures;
    }
    for (std::size_t cut : {std::size_t(3), std::size_t(20), b.size() - 1, b.size() - 10}) {
        if (!rejects(std::vector<uint8_t>(b.begin(), b.begin() + cut))) { std::printf("truncation at %zu accepted\n", cut); ++failures; }
    }
    for (std::size_t at : {std::size_t(9), std::size_t(30), b.size() - 12}) {
        std::vector<uint8_t> c(b);
        c[at] ^= 0x10;
        if (!rejects(c)) { std::printf("bit flip at %zu accepted\n", at); ++failures; }
    }
    std::vector<uint8_t> v(b);
    v[4] = 2;
    if (!rejects(v)) { std::printf("version 2 accepted\n"); ++failures; }
    std::vector<uint8_t> t(b);
    t.push_back(0);
    if (!rejects(t)) { std::printf("trailing byte accepted\n"); ++failures; }
    std::printf(failures ? "FAILED (%d)\n" : "ok\n", failures);
    return failures ? 1 : 0;
}
