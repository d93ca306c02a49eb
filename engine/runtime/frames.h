// The wire format of channels: a Buffer holds a sequence of frames.
//
//   record:           u8 kRecord, fixed32 length, fixed64 timestamp, bytes
//   watermark:        u8 kWatermark, fixed64 timestamp
//   watermark status: u8 kStatus, u8 idle
//   barrier:          u8 kBarrier, fixed64 checkpoint id, fixed64 trigger time, u8 flags
//   end of data:      u8 kEndOfData (no more records; barriers may follow)
//   end of partition: u8 kEndOfPartition (the producer is gone)
//
// The same bytes travel through in-memory channels and over the network,
// so local and remote channels share one code path.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "engine/common/ids.h"
#include "engine/common/time.h"

namespace sluice::runtime {

enum class FrameKind : uint8_t {
  kRecord = 1,
  kWatermark = 2,
  kStatus = 3,
  kBarrier = 4,
  kEndOfPartition = 5,
  kEndOfData = 6,
};

/// Bits of Barrier::flags (one byte on the wire).
enum class BarrierFlag : uint8_t {
  kSavepoint = 1 << 0,  // kept until deleted; always aligned
  kUnaligned = 1 << 1,  // may be taken at once, recording in-flight input
  kFinal = 1 << 2,      // the first checkpoint after every source ended; always aligned
};

/// A checkpoint barrier.
struct Barrier {
  CheckpointId id{0};
  int64_t trigger_time_ms = 0;
  uint8_t flags = 0;  // BarrierFlag bits

  bool has(BarrierFlag f) const { return (flags & static_cast<uint8_t>(f)) != 0; }
  Barrier& set(BarrierFlag f, bool on = true) {
    flags = on ? static_cast<uint8_t>(flags | static_cast<uint8_t>(f))
               : static_cast<uint8_t>(flags & ~static_cast<uint8_t>(f));
    return *this;
  }
  bool is_savepoint() const { return has(BarrierFlag::kSavepoint); }
  bool is_unaligned() const { return has(BarrierFlag::kUnaligned); }
  bool is_final() const { return has(BarrierFlag::kFinal); }
  /// Savepoints and final checkpoints are always aligned: they must cover
  /// every record before them, not carry records in flight.
  bool must_align() const { return is_savepoint() || is_final(); }
};

/// A batch of frames; the unit that channels move and count.
struct Buffer {
  std::string data;
  bool empty() const { return data.empty(); }
};

namespace frames {

inline constexpr size_t kRecordHeader = 1 + 4 + 8;

/// Starts a record frame; returns the offset to pass to end_record once the
/// payload has been appended to `out`.
inline size_t begin_record(std::string& out, EventTime ts) {
  size_t start = out.size();
  out.resize(start + kRecordHeader);
  char* p = out.data() + start;
  p[0] = static_cast<char>(FrameKind::kRecord);
  int64_t t = ts.ms();
  std::memcpy(p + 5, &t, 8);
  return start;
}
inline void end_record(std::string& out, size_t start) {
  uint32_t len = static_cast<uint32_t>(out.size() - start - kRecordHeader);
  std::memcpy(out.data() + start + 1, &len, 4);
}

void append_watermark(std::string& out, EventTime wm);
void append_status(std::string& out, bool idle);
void append_barrier(std::string& out, const Barrier& b);
void append_end_of_partition(std::string& out);
void append_end_of_data(std::string& out);

/// One decoded frame; `payload` points into the buffer.
struct Frame {
  FrameKind kind{};
  EventTime ts;             // record timestamp or watermark
  std::string_view payload;  // record bytes
  bool idle = false;
  Barrier barrier;
};

/// Decodes the frame at `pos` and advances it. Returns false on a
/// truncated or unknown frame (corruption: the channel is broken).
bool next(std::string_view buf, size_t& pos, Frame& out);

/// Looks for the barrier of checkpoint `id` in the frames of `buf` from
/// `from` on; true with the offset of its frame if found.
bool find_barrier(std::string_view buf, size_t from, CheckpointId id, size_t& at);

/// The data plane's hello (runtime/data_plane.h) as it travels: magic,
/// version, attempt, edge, producer, consumer, sender port, job id, the
/// producer's nonce and its mac.
struct WireHello {
  std::string job_id;
  int32_t attempt = 0, edge = 0, producer = 0, consumer = 0, sender_port = 0;
  std::string nonce;  // kHelloNonceBytes
  std::string mac;    // kHelloMacBytes
};
inline constexpr uint32_t kHelloMagic = 0x50444c53;  // "SLDP"
inline constexpr uint16_t kHelloVersion = 2;
inline constexpr size_t kHelloNonceBytes = 16;
inline constexpr size_t kHelloMacBytes = 32;
/// Everything but nonce and mac (what the mac covers with both nonces).
std::string hello_fields(const WireHello& h);
std::string encode_hello(const WireHello& h);
/// False with the reason in `error` on anything but a well-formed hello.
bool decode_hello(std::string_view payload, WireHello& out, std::string& error);

}  // namespace frames
}  // namespace sluice::runtime
