#include "engine/runtime/frames.h"

namespace sluice::runtime::frames {

namespace {
void put64(std::string& out, int64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }
int64_t get64(const char* p) {
  int64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
}  // namespace

void append_watermark(std::string& out, EventTime wm) {
  out.push_back(static_cast<char>(FrameKind::kWatermark));
  put64(out, wm.ms());
}

void append_status(std::string& out, bool idle) {
  out.push_back(static_cast<char>(FrameKind::kStatus));
  out.push_back(idle ? 1 : 0);
}

void append_barrier(std::string& out, const Barrier& b) {
  out.push_back(static_cast<char>(FrameKind::kBarrier));
  put64(out, b.id.value());
  put64(out, b.trigger_time_ms);
  out.push_back(static_cast<char>(b.flags));
}

void append_end_of_partition(std::string& out) {
  out.push_back(static_cast<char>(FrameKind::kEndOfPartition));
}

void append_end_of_data(std::string& out) { out.push_back(static_cast<char>(FrameKind::kEndOfData)); }

bool next(std::string_view buf, size_t& pos, Frame& out) {
  if (pos >= buf.size()) return false;
  const char* p = buf.data() + pos;
  size_t left = buf.size() - pos;
  auto kind = static_cast<FrameKind>(p[0]);
  out.kind = kind;
  switch (kind) {
    case FrameKind::kRecord: {
      if (left < kRecordHeader) return false;
      uint32_t len;
      std::memcpy(&len, p + 1, 4);
      if (left - kRecordHeader < len) return false;
      out.ts = EventTime(get64(p + 5));
      out.payload = std::string_view(p + kRecordHeader, len);
      pos += kRecordHeader + len;
      return true;
    }
    case FrameKind::kWatermark:
      if (left < 9) return false;
      out.ts = EventTime(get64(p + 1));
      pos += 9;
      return true;
    case FrameKind::kStatus:
      if (left < 2) return false;
      out.idle = p[1] != 0;
      pos += 2;
      return true;
    case FrameKind::kBarrier:
      if (left < 18) return false;
      out.barrier.id = CheckpointId(get64(p + 1));
      out.barrier.trigger_time_ms = get64(p + 9);
      out.barrier.flags = static_cast<uint8_t>(p[17]);
      pos += 18;
      return true;
    case FrameKind::kEndOfPartition:
    case FrameKind::kEndOfData:
      pos += 1;
      return true;
  }
  return false;
}

bool find_barrier(std::string_view buf, size_t from, CheckpointId id, size_t& at) {
  size_t pos = from;
  Frame f;
  while (pos < buf.size()) {
    size_t start = pos;
    if (!next(buf, pos, f)) return false;
    if (f.kind == FrameKind::kBarrier && f.barrier.id == id) {
      at = start;
      return true;
    }
  }
  return false;
}

}  // namespace sluice::runtime::frames
