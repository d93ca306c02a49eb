#include "engine/runtime/record_writer.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/common/serde.h"
#include "engine/runtime/type_info.h"
#include "state/key_groups.h"

namespace sluice::runtime {
namespace {

/// One decoded frame, owning its payload.
struct Decoded {
  FrameKind kind{};
  int64_t ts = 0;
  std::string payload;
  bool idle = false;
  int64_t barrier_id = 0;
};

/// Pops every buffer of `ch` and decodes all its frames; each buffer must
/// decode completely.
std::vector<std::vector<Decoded>> drain(Channel& ch) {
  std::vector<std::vector<Decoded>> out;
  Buffer b;
  while (ch.try_pop(b)) {
    std::vector<Decoded> frames_of_buffer;
    size_t pos = 0;
    frames::Frame f;
    while (pos < b.data.size()) {
      if (!frames::next(b.data, pos, f)) {
        ADD_FAILURE() << "undecodable frame at byte " << pos << " of a buffer from " << ch.name();
        break;
      }
      Decoded d;
      d.kind = f.kind;
      d.ts = f.ts.ms();
      d.payload = std::string(f.payload);
      d.idle = f.idle;
      d.barrier_id = f.barrier.id.value();
      frames_of_buffer.push_back(std::move(d));
    }
    out.push_back(std::move(frames_of_buffer));
  }
  return out;
}

std::vector<Decoded> flatten(const std::vector<std::vector<Decoded>>& buffers) {
  std::vector<Decoded> out;
  for (const auto& b : buffers) out.insert(out.end(), b.begin(), b.end());
  return out;
}

std::vector<std::shared_ptr<Channel>> make_channels(int n, size_t capacity = 64) {
  std::vector<std::shared_ptr<Channel>> out;
  for (int i = 0; i < n; ++i) out.push_back(std::make_shared<Channel>("ch" + std::to_string(i), capacity));
  return out;
}

void append_record(RecordWriter& w, int ch, int64_t ts, const std::string& payload) {
  std::string& b = w.buffer(ch);
  size_t start = frames::begin_record(b, EventTime(ts));
  b += payload;
  frames::end_record(b, start);
  w.record_appended(ch);
}

TEST(RecordWriter, HoldsRecordsUntilTheByteThresholdThenSendsOneBuffer) {
  auto chans = make_channels(1);
  CancelFlag cancel{false};
  constexpr size_t kThreshold = 100;
  RecordWriter w(chans, &cancel, kThreshold);
  const std::string payload(7, 'p');
  const size_t frame_size = frames::kRecordHeader + payload.size();  // 20 bytes
  // The buffer reaches the threshold with the record that makes it >= 100 bytes.
  const size_t records_to_fill = (kThreshold + frame_size - 1) / frame_size;  // 5

  for (size_t i = 0; i + 1 < records_to_fill; ++i) {
    append_record(w, 0, static_cast<int64_t>(i), payload);
    EXPECT_EQ(chans[0]->size(), 0u) << "record " << i << " must wait in the pending buffer";
    EXPECT_TRUE(w.has_pending());
  }
  append_record(w, 0, static_cast<int64_t>(records_to_fill - 1), payload);
  ASSERT_EQ(chans[0]->size(), 1u) << "reaching the threshold sends the buffer";
  EXPECT_FALSE(w.has_pending());

  auto buffers = drain(*chans[0]);
  ASSERT_EQ(buffers.size(), 1u);
  ASSERT_EQ(buffers[0].size(), records_to_fill);
  for (size_t i = 0; i < records_to_fill; ++i) {
    EXPECT_EQ(buffers[0][i].kind, FrameKind::kRecord);
    EXPECT_EQ(buffers[0][i].ts, static_cast<int64_t>(i));
    EXPECT_EQ(buffers[0][i].payload, payload);
  }
  EXPECT_EQ(w.stats().records, records_to_fill);
  EXPECT_EQ(w.stats().bytes, records_to_fill * frame_size);
}

TEST(RecordWriter, FlushSendsAPartialBufferAndEmptyFlushSendsNothing) {
  auto chans = make_channels(2);
  CancelFlag cancel{false};
  RecordWriter w(chans, &cancel, 1 << 20);
  append_record(w, 1, 5, "x");
  w.flush_all();
  EXPECT_EQ(chans[0]->size(), 0u) << "a channel without pending bytes gets no empty buffer";
  ASSERT_EQ(chans[1]->size(), 1u);
  w.flush_all();
  EXPECT_EQ(chans[1]->size(), 1u) << "flushing again sends nothing new";
  auto frames_of_1 = flatten(drain(*chans[1]));
  ASSERT_EQ(frames_of_1.size(), 1u);
  EXPECT_EQ(frames_of_1[0].payload, "x");
}

TEST(RecordWriter, WatermarksAndStatusReachEveryChannel) {
  auto chans = make_channels(3);
  CancelFlag cancel{false};
  RecordWriter w(chans, &cancel, 1 << 20);
  w.broadcast_watermark(EventTime(1234));
  w.flush_all();
  w.broadcast_status(true);  // flushes by itself
  for (int c = 0; c < 3; ++c) {
    auto fs = flatten(drain(*chans[c]));
    ASSERT_EQ(fs.size(), 2u) << "channel " << c;
    EXPECT_EQ(fs[0].kind, FrameKind::kWatermark);
    EXPECT_EQ(fs[0].ts, 1234);
    EXPECT_EQ(fs[1].kind, FrameKind::kStatus);
    EXPECT_TRUE(fs[1].idle);
  }
}

// The task failed (a user function threw on a record): what it wrote
// after, and what is pending, never leaves it — not by a full buffer, a
// watermark, a flush or a barrier.
TEST(RecordWriter, SendsNothingOnceItsTaskFailed) {
  auto chans = make_channels(2);
  CancelFlag cancel{false};
  std::atomic<bool> failed{false};
  RecordWriter w(chans, &cancel, 64, &failed);
  append_record(w, 0, 1, "before");
  w.flush_all();
  ASSERT_EQ(chans[0]->size(), 1u);
  append_record(w, 1, 2, "pending");
  failed.store(true);
  for (int i = 0; i < 10; ++i) append_record(w, i % 2, 3 + i, "after the failing record");
  w.broadcast_watermark(EventTime(100));
  w.broadcast_status(true);
  w.broadcast_barrier(Barrier{CheckpointId(1), 0});
  w.flush_all();
  EXPECT_EQ(chans[0]->size(), 1u) << "only what was sent before the failure";
  EXPECT_EQ(chans[1]->size(), 0u);
  EXPECT_FALSE(w.has_pending()) << "what was pending is dropped";
}

TEST(RecordWriter, BarrierFollowsPendingRecordsOnEveryChannelAndIsSentAtOnce) {
  auto chans = make_channels(3);
  CancelFlag cancel{false};
  RecordWriter w(chans, &cancel, 1 << 20);
  append_record(w, 0, 1, "r0");
  append_record(w, 2, 2, "r2");
  w.broadcast_barrier(Barrier{CheckpointId(7), 99, 0});
  for (int c = 0; c < 3; ++c) {
    SCOPED_TRACE("channel " + std::to_string(c));
    auto fs = flatten(drain(*chans[c]));
    ASSERT_FALSE(fs.empty()) << "the barrier must be sent without an explicit flush";
    EXPECT_EQ(fs.back().kind, FrameKind::kBarrier);
    EXPECT_EQ(fs.back().barrier_id, 7);
    size_t records = (c == 1) ? 0u : 1u;
    ASSERT_EQ(fs.size(), records + 1) << "records written before the barrier precede it";
    if (records) {
      EXPECT_EQ(fs[0].kind, FrameKind::kRecord);
    }
  }
}

TEST(RecordWriter, EndOfDataAndEndOfPartitionReachEveryChannelInOrder) {
  auto chans = make_channels(2);
  CancelFlag cancel{false};
  RecordWriter w(chans, &cancel, 1 << 20);
  append_record(w, 1, 3, "last");
  w.broadcast_end_of_data();
  w.broadcast_end_of_partition();
  for (int c = 0; c < 2; ++c) {
    auto fs = flatten(drain(*chans[c]));
    std::vector<FrameKind> kinds;
    for (const auto& f : fs) kinds.push_back(f.kind);
    std::vector<FrameKind> expected;
    if (c == 1) expected.push_back(FrameKind::kRecord);
    expected.push_back(FrameKind::kEndOfData);
    expected.push_back(FrameKind::kEndOfPartition);
    EXPECT_EQ(kinds, expected) << "channel " << c;
  }
}

TEST(RecordWriter, EndOfPartitionIsDeliveredEvenToAFullChannel) {
  auto chans = make_channels(1, /*capacity=*/1);
  CancelFlag cancel{false};
  RecordWriter w(chans, &cancel, 1);  // every record is its own buffer
  append_record(w, 0, 1, "fills the channel");
  ASSERT_EQ(chans[0]->size(), 1u);
  w.broadcast_end_of_partition();  // must not block
  auto fs = flatten(drain(*chans[0]));
  ASSERT_EQ(fs.size(), 2u);
  EXPECT_EQ(fs.back().kind, FrameKind::kEndOfPartition);
}

TEST(RecordWriter, IsBrokenAfterAPushFailsOnACancelledFullChannel) {
  auto chans = make_channels(1, /*capacity=*/1);
  CancelFlag cancel{false};
  RecordWriter w(chans, &cancel, 1);
  append_record(w, 0, 1, "a");
  EXPECT_FALSE(w.broken());
  cancel.store(true);
  append_record(w, 0, 2, "b");  // channel full and cancelled: returns instead of blocking
  EXPECT_TRUE(w.broken());
  EXPECT_EQ(chans[0]->size(), 1u);
}

// ---- partitioning through TypeInfo's writer output ---------------------------

struct Keyed {
  std::string key;
  int64_t n = 0;
  SLUICE_FIELDS(key, n)
};

/// The subtask owning `key` for `parallelism` consumers, found by scanning
/// the key-group ranges rather than calling the router's own function.
int owner_of(const std::string& key, int32_t max_parallelism, int32_t parallelism) {
  std::string bytes = serialize(key);
  KeyGroup kg = state::key_group_for_key(bytes, max_parallelism);
  int owner = -1;
  for (int s = 0; s < parallelism; ++s) {
    if (state::key_group_range_for_subtask(max_parallelism, parallelism, s).contains(kg)) {
      EXPECT_EQ(owner, -1) << "two subtasks own key group " << kg.value();
      owner = s;
    }
  }
  EXPECT_EQ(owner, state::subtask_for_key_group(max_parallelism, parallelism, kg));
  return owner;
}

std::vector<Keyed> decode_records(Channel& ch) {
  std::vector<Keyed> out;
  for (const auto& f : flatten(drain(ch))) {
    if (f.kind != FrameKind::kRecord) continue;
    Keyed k;
    EXPECT_TRUE(deserialize(f.payload, k).is_ok());
    out.push_back(k);
  }
  return out;
}

TEST(WriterOutput, HashPartitioningSendsEachRecordToTheSubtaskOwningItsKeyGroup) {
  for (int32_t maxp : {128, 7}) {
    for (int n : {1, 2, 3, 4, 7}) {
      if (n > maxp) continue;
      SCOPED_TRACE("max parallelism " + std::to_string(maxp) + ", " + std::to_string(n) + " channels");
      auto chans = make_channels(n, 100000);
      CancelFlag cancel{false};
      RecordWriter w(chans, &cancel, 256);
      auto ks = std::make_shared<const KeySelector<Keyed, std::string>>(
          [](const Keyed& k) { return k.key; });
      auto out = type_info<Keyed>()->make_writer_output(&w, Partitioning::kHash, ks.get(), maxp, 0);
      auto* typed = static_cast<Output<Keyed>*>(out.get());
      std::map<std::string, int> expected_owner;
      constexpr int kRecords = 2000;
      for (int i = 0; i < kRecords; ++i) {
        std::string key = "user-" + std::to_string(i % 311);
        typed->collect(Keyed{key, i}, EventTime(i));
        expected_owner.emplace(key, owner_of(key, maxp, n));
      }
      w.flush_all();
      int total = 0;
      std::set<int> used;
      for (int c = 0; c < n; ++c) {
        for (const auto& r : decode_records(*chans[c])) {
          ++total;
          ASSERT_EQ(c, expected_owner.at(r.key)) << "record of key " << r.key;
          used.insert(c);
        }
      }
      EXPECT_EQ(total, kRecords);
      EXPECT_EQ(static_cast<int>(used.size()), n) << "311 keys must spread over every subtask";
    }
  }
}

TEST(WriterOutput, RebalanceDealsRecordsRoundRobin) {
  constexpr int kChannels = 3;
  auto chans = make_channels(kChannels, 100000);
  CancelFlag cancel{false};
  RecordWriter w(chans, &cancel, 1 << 20);
  auto out = type_info<Keyed>()->make_writer_output(&w, Partitioning::kRebalance, nullptr, 128, 0);
  auto* typed = static_cast<Output<Keyed>*>(out.get());
  constexpr int kRecords = 300;
  for (int i = 0; i < kRecords; ++i) typed->collect(Keyed{"k", i}, EventTime(i));
  w.flush_all();
  std::set<int64_t> all;
  for (int c = 0; c < kChannels; ++c) {
    auto recs = decode_records(*chans[c]);
    EXPECT_EQ(recs.size(), static_cast<size_t>(kRecords / kChannels)) << "channel " << c;
    // Consecutive records of one channel are kChannels apart.
    for (size_t i = 1; i < recs.size(); ++i) EXPECT_EQ(recs[i].n - recs[i - 1].n, kChannels);
    for (const auto& r : recs) all.insert(r.n);
  }
  EXPECT_EQ(all.size(), static_cast<size_t>(kRecords)) << "every record is sent exactly once";
}

TEST(WriterOutput, BroadcastSendsEveryRecordToEveryChannel) {
  constexpr int kChannels = 4;
  auto chans = make_channels(kChannels, 100000);
  CancelFlag cancel{false};
  RecordWriter w(chans, &cancel, 64);
  auto out = type_info<Keyed>()->make_writer_output(&w, Partitioning::kBroadcast, nullptr, 128, 0);
  auto* typed = static_cast<Output<Keyed>*>(out.get());
  for (int i = 0; i < 50; ++i) typed->collect(Keyed{"k" + std::to_string(i), i}, EventTime(i));
  w.flush_all();
  for (int c = 0; c < kChannels; ++c) {
    auto recs = decode_records(*chans[c]);
    ASSERT_EQ(recs.size(), 50u) << "channel " << c;
    for (int i = 0; i < 50; ++i) EXPECT_EQ(recs[i].n, i) << "in order on channel " << c;
  }
}

}  // namespace
}  // namespace sluice::runtime
