#include "engine/runtime/frames.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace sluice::runtime {
namespace {

std::string record_frame(EventTime ts, const std::string& payload) {
  std::string out;
  size_t start = frames::begin_record(out, ts);
  out += payload;
  frames::end_record(out, start);
  return out;
}

// Encoded size of each frame kind, from the layout documented in frames.h
// (kind byte + fixed-width fields), not from the encoder.
constexpr size_t kWatermarkSize = 1 + 8;
constexpr size_t kStatusSize = 1 + 1;
constexpr size_t kBarrierSize = 1 + 8 + 8 + 1;

TEST(Frames, RecordRoundTripsTimestampAndPayload) {
  const std::vector<std::pair<int64_t, std::string>> cases = {
      {0, ""},
      {1'700'000'000'123, "hello"},
      {-5, std::string("\0\x01\xff binary", 10)},
      {std::numeric_limits<int64_t>::min(), "min ts"},
      {std::numeric_limits<int64_t>::max(), std::string(70'000, 'x')},
  };
  for (const auto& [ts, payload] : cases) {
    std::string buf = record_frame(EventTime(ts), payload);
    EXPECT_EQ(buf.size(), 1 + 4 + 8 + payload.size());
    size_t pos = 0;
    frames::Frame f;
    ASSERT_TRUE(frames::next(buf, pos, f));
    EXPECT_EQ(f.kind, FrameKind::kRecord);
    EXPECT_EQ(f.ts.ms(), ts);
    EXPECT_EQ(std::string(f.payload), payload);
    EXPECT_EQ(pos, buf.size());
  }
}

TEST(Frames, WatermarkRoundTrips) {
  for (int64_t wm : {std::numeric_limits<int64_t>::min(), int64_t{-1}, int64_t{0},
                     int64_t{1'700'000'000'000}, std::numeric_limits<int64_t>::max()}) {
    std::string buf;
    frames::append_watermark(buf, EventTime(wm));
    ASSERT_EQ(buf.size(), kWatermarkSize);
    size_t pos = 0;
    frames::Frame f;
    ASSERT_TRUE(frames::next(buf, pos, f));
    EXPECT_EQ(f.kind, FrameKind::kWatermark);
    EXPECT_EQ(f.ts.ms(), wm);
    EXPECT_EQ(pos, buf.size());
  }
}

TEST(Frames, WatermarkStatusRoundTripsBothValues) {
  for (bool idle : {true, false}) {
    std::string buf;
    frames::append_status(buf, idle);
    ASSERT_EQ(buf.size(), kStatusSize);
    size_t pos = 0;
    frames::Frame f;
    f.idle = !idle;
    ASSERT_TRUE(frames::next(buf, pos, f));
    EXPECT_EQ(f.kind, FrameKind::kStatus);
    EXPECT_EQ(f.idle, idle);
    EXPECT_EQ(pos, buf.size());
  }
}

TEST(Frames, BarrierRoundTripsIdTriggerTimeAndFlags) {
  for (uint8_t flags : {uint8_t{0}, uint8_t{1}, uint8_t{0xfe}, uint8_t{0xff}}) {
    Barrier b;
    b.id = CheckpointId(0x0102030405060708LL);
    b.trigger_time_ms = 1'700'000'000'999;
    b.flags = flags;
    std::string buf;
    frames::append_barrier(buf, b);
    ASSERT_EQ(buf.size(), kBarrierSize);
    size_t pos = 0;
    frames::Frame f;
    ASSERT_TRUE(frames::next(buf, pos, f));
    EXPECT_EQ(f.kind, FrameKind::kBarrier);
    EXPECT_EQ(f.barrier.id, b.id);
    EXPECT_EQ(f.barrier.trigger_time_ms, b.trigger_time_ms);
    EXPECT_EQ(f.barrier.flags, flags);
    EXPECT_EQ(f.barrier.is_savepoint(), (flags & 1) != 0);
    EXPECT_EQ(pos, buf.size());
  }
}

TEST(Frames, EndMarkersRoundTrip) {
  std::string buf;
  frames::append_end_of_data(buf);
  frames::append_end_of_partition(buf);
  ASSERT_EQ(buf.size(), 2u);
  size_t pos = 0;
  frames::Frame f;
  ASSERT_TRUE(frames::next(buf, pos, f));
  EXPECT_EQ(f.kind, FrameKind::kEndOfData);
  EXPECT_EQ(pos, 1u);
  ASSERT_TRUE(frames::next(buf, pos, f));
  EXPECT_EQ(f.kind, FrameKind::kEndOfPartition);
  EXPECT_EQ(pos, 2u);
  EXPECT_FALSE(frames::next(buf, pos, f)) << "nothing follows the last frame";
}

TEST(Frames, SequenceOfEveryKindDecodesInOrder) {
  std::string buf = record_frame(EventTime(10), "a");
  frames::append_watermark(buf, EventTime(9));
  buf += record_frame(EventTime(11), "bb");
  frames::append_status(buf, true);
  frames::append_barrier(buf, Barrier{CheckpointId(3), 77, 1});
  frames::append_end_of_data(buf);
  frames::append_end_of_partition(buf);

  std::vector<FrameKind> kinds;
  std::vector<std::string> payloads;
  size_t pos = 0;
  frames::Frame f;
  while (pos < buf.size()) {
    ASSERT_TRUE(frames::next(buf, pos, f)) << "at byte " << pos;
    kinds.push_back(f.kind);
    if (f.kind == FrameKind::kRecord) payloads.emplace_back(f.payload);
  }
  EXPECT_EQ(kinds, (std::vector<FrameKind>{FrameKind::kRecord, FrameKind::kWatermark,
                                           FrameKind::kRecord, FrameKind::kStatus,
                                           FrameKind::kBarrier, FrameKind::kEndOfData,
                                           FrameKind::kEndOfPartition}));
  EXPECT_EQ(payloads, (std::vector<std::string>{"a", "bb"}));
}

// Every strict prefix of a frame is a truncated frame: next() must refuse
// it and leave the position where it was.
TEST(Frames, TruncatedFramesOfEveryKindAreRejected) {
  std::vector<std::pair<std::string, std::string>> frames_by_name;
  frames_by_name.emplace_back("record", record_frame(EventTime(42), "payload bytes"));
  frames_by_name.emplace_back("empty record", record_frame(EventTime(42), ""));
  {
    std::string b;
    frames::append_watermark(b, EventTime(5));
    frames_by_name.emplace_back("watermark", b);
  }
  {
    std::string b;
    frames::append_status(b, true);
    frames_by_name.emplace_back("status", b);
  }
  {
    std::string b;
    frames::append_barrier(b, Barrier{CheckpointId(9), 1, 1});
    frames_by_name.emplace_back("barrier", b);
  }
  {
    std::string b;
    frames::append_end_of_data(b);
    frames_by_name.emplace_back("end of data", b);
  }
  {
    std::string b;
    frames::append_end_of_partition(b);
    frames_by_name.emplace_back("end of partition", b);
  }
  for (const auto& [name, full] : frames_by_name) {
    for (size_t len = 0; len < full.size(); ++len) {
      SCOPED_TRACE(name + " cut to " + std::to_string(len) + " of " + std::to_string(full.size()) +
                   " bytes");
      // Put a complete frame in front, so truncation is also checked at pos > 0.
      std::string buf;
      frames::append_end_of_data(buf);
      buf += full.substr(0, len);
      size_t pos = 0;
      frames::Frame f;
      ASSERT_TRUE(frames::next(buf, pos, f));
      ASSERT_EQ(pos, 1u);
      EXPECT_FALSE(frames::next(buf, pos, f));
      EXPECT_EQ(pos, 1u) << "a rejected frame must not advance the position";
    }
  }
}

TEST(Frames, RecordWhoseLengthExceedsTheBufferIsRejected) {
  std::string buf = record_frame(EventTime(1), "abcdef");
  uint32_t too_long = 7;  // one more byte than the payload that follows
  std::memcpy(buf.data() + 1, &too_long, 4);
  size_t pos = 0;
  frames::Frame f;
  EXPECT_FALSE(frames::next(buf, pos, f));
  EXPECT_EQ(pos, 0u);

  uint32_t huge = 0xffffffffu;  // must not wrap around in the bounds check
  std::memcpy(buf.data() + 1, &huge, 4);
  EXPECT_FALSE(frames::next(buf, pos, f));
}

TEST(Frames, UnknownKindIsRejected) {
  for (int kind : {0, 7, 8, 0x7f, 0x80, 0xff}) {
    std::string buf(32, '\0');
    buf[0] = static_cast<char>(kind);
    size_t pos = 0;
    frames::Frame f;
    EXPECT_FALSE(frames::next(buf, pos, f)) << "kind byte " << kind;
  }
}

TEST(Frames, HelloRoundTripsAndAnythingElseIsRefused) {
  frames::WireHello h;
  h.job_id = "job-\xe2\x82\xac";
  h.attempt = 7;
  h.edge = 3;
  h.producer = 1;
  h.consumer = 2;
  h.sender_port = 6125;
  h.nonce = std::string(frames::kHelloNonceBytes, 'n');
  h.mac = std::string(frames::kHelloMacBytes, 'm');
  std::string wire = frames::encode_hello(h);
  frames::WireHello back;
  std::string error;
  ASSERT_TRUE(frames::decode_hello(wire, back, error)) << error;
  EXPECT_EQ(frames::encode_hello(back), wire);
  EXPECT_EQ(back.job_id, h.job_id);
  EXPECT_EQ(back.attempt, 7);
  for (size_t cut = 0; cut < wire.size(); ++cut) {
    EXPECT_FALSE(frames::decode_hello(std::string_view(wire).substr(0, cut), back, error)) << cut;
  }
  EXPECT_FALSE(frames::decode_hello(wire + "x", back, error));
  h.attempt = -1;
  EXPECT_FALSE(frames::decode_hello(frames::encode_hello(h), back, error)) << "negative attempts are refused";
}

}  // namespace
}  // namespace sluice::runtime
