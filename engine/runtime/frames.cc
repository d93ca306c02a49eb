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

namespace {
void put_u16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>(v >> 8));
}
void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint16_t get_u16(const char* p) {
  return static_cast<uint16_t>(static_cast<uint8_t>(p[0]) | static_cast<uint8_t>(p[1]) << 8);
}
uint32_t get_u32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}
}  // namespace

std::string hello_fields(const WireHello& h) {
  std::string out;
  put_u32(out, kHelloMagic);
  put_u16(out, kHelloVersion);
  for (int32_t v : {h.attempt, h.edge, h.producer, h.consumer, h.sender_port}) put_u32(out, static_cast<uint32_t>(v));
  put_u16(out, static_cast<uint16_t>(h.job_id.size()));
  out += h.job_id;
  return out;
}

std::string encode_hello(const WireHello& h) { return hello_fields(h) + h.nonce + h.mac; }

bool decode_hello(std::string_view p, WireHello& h, std::string& error) {
  constexpr size_t kFixed = 4 + 2 + 5 * 4 + 2;
  if (p.size() < kFixed) return error = "short hello", false;
  if (get_u32(p.data()) != kHelloMagic) return error = "not a sluice data-plane peer", false;
  uint16_t version = get_u16(p.data() + 4);
  if (version != kHelloVersion) {
    error = "data-plane protocol version " + std::to_string(version) + ", expected " + std::to_string(kHelloVersion);
    return false;
  }
  const char* q = p.data() + 6;
  h.attempt = static_cast<int32_t>(get_u32(q));
  h.edge = static_cast<int32_t>(get_u32(q + 4));
  h.producer = static_cast<int32_t>(get_u32(q + 8));
  h.consumer = static_cast<int32_t>(get_u32(q + 12));
  h.sender_port = static_cast<int32_t>(get_u32(q + 16));
  size_t len = get_u16(q + 20);
  if (p.size() != kFixed + len + kHelloNonceBytes + kHelloMacBytes) return error = "malformed hello", false;
  h.job_id.assign(p.data() + kFixed, len);
  if (h.job_id.empty()) return error = "hello without a job id", false;
  if (h.attempt < 0) return error = "hello with a negative attempt", false;
  h.nonce.assign(p.data() + kFixed + len, kHelloNonceBytes);
  h.mac.assign(p.data() + kFixed + len + kHelloNonceBytes, kHelloMacBytes);
  return true;
}

}  // namespace sluice::runtime::frames
