#include "engine/runtime/channel_state.h"

#include "engine/common/serde.h"

namespace sluice::runtime {

namespace {
constexpr std::string_view kMagic = "SLUICE-CHANNELS-1\n";
}

std::string encode_channel_state(const std::vector<RecordedChannel>& channels) {
  std::string out(kMagic);
  ByteWriter w(out);
  for (const auto& c : channels) {
    w.put_varint(static_cast<uint64_t>(c.edge));
    w.put_varint(static_cast<uint64_t>(c.producer));
    w.put_bytes(c.frames);
  }
  return out;
}

Result<std::vector<RecordedChannel>> decode_channel_state(std::string_view data,
                                                          const std::string& what) {
  if (data.substr(0, kMagic.size()) != kMagic) {
    return Status::corruption("'" + what + "' is not recorded channel state");
  }
  std::vector<RecordedChannel> out;
  ByteReader r(data.substr(kMagic.size()));
  while (!r.empty()) {
    uint64_t edge, producer;
    std::string_view frames;
    if (!r.get_varint(edge) || !r.get_varint(producer) || !r.get_bytes(frames)) {
      return Status::corruption("'" + what + "' is truncated");
    }
    out.push_back(RecordedChannel{static_cast<int>(edge), static_cast<int>(producer),
                                  std::string(frames)});
  }
  return out;
}

}  // namespace sluice::runtime
