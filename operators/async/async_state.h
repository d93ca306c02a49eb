// The operator state of an async I/O subtask: the records still in the
// operator at a checkpoint, in order, with the watermarks between them.
//
// Blob: u8 version (1), varint count, then per item u8 kind (0 record,
// 1 watermark), zigzag timestamp, and for a record its Serde bytes.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/common/serde.h"
#include "engine/common/status.h"
#include "engine/common/time.h"
#include "engine/runtime/operator.h"

namespace sluice::async_io {

/// One record or watermark of a snapshot. Value type.
template <class IN>
struct StateItem {
  bool is_watermark = false;
  EventTime ts;  // the record's timestamp or the watermark
  IN value{};

  static StateItem record(const IN& v, EventTime ts) { return {false, ts, v}; }
  static StateItem watermark(EventTime wm) { return {true, wm, IN{}}; }
};

inline constexpr uint8_t kAsyncStateVersion = 1;

template <class IN>
std::string encode_state(const std::vector<StateItem<IN>>& items) {
  std::string out;
  if (items.empty()) return out;
  ByteWriter w(out);
  w.put_u8(kAsyncStateVersion);
  w.put_varint(items.size());
  for (const auto& it : items) {
    w.put_u8(it.is_watermark ? 1 : 0);
    w.put_zigzag(it.ts.ms());
    if (!it.is_watermark) Serde<IN>::write(w, it.value);
  }
  return out;
}

template <class IN>
Result<std::vector<StateItem<IN>>> decode_state(std::string_view blob) {
  std::vector<StateItem<IN>> items;
  if (blob.empty()) return items;
  ByteReader r(blob);
  uint8_t version = 0;
  uint64_t n = 0;
  if (!r.get_u8(version) || version != kAsyncStateVersion) {
    return Status::corruption("async I/O operator state: unknown version " + std::to_string(version));
  }
  // Every item takes at least two bytes: a count beyond that is corrupt.
  if (!r.get_varint(n) || n > r.remaining() / 2) return Status::corruption("async I/O operator state: bad count");
  items.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    StateItem<IN> it;
    uint8_t kind = 0;
    int64_t ts = 0;
    if (!r.get_u8(kind) || kind > 1 || !r.get_zigzag(ts)) {
      return Status::corruption("async I/O operator state: bad item " + std::to_string(i));
    }
    it.is_watermark = kind == 1;
    it.ts = EventTime(ts);
    if (!it.is_watermark && !Serde<IN>::read(r, it.value)) {
      return Status::corruption("async I/O operator state: undecodable record " + std::to_string(i));
    }
    items.push_back(std::move(it));
  }
  if (!r.empty()) return Status::corruption("async I/O operator state: trailing bytes");
  return items;
}

/// What subtask `subtask` of `parallelism` calls again after a restore. At
/// the same parallelism: its own items, watermarks included. Otherwise the
/// records of every old subtask (in subtask order) cut into `parallelism`
/// contiguous runs, without watermarks (they would mean nothing for the
/// mix of records a subtask now holds; the sources provide new ones).
template <class IN>
Result<std::vector<StateItem<IN>>> redistribute(const runtime::OperatorRestore& restore, int32_t subtask,
                                                int32_t parallelism) {
  if (restore.old_parallelism == parallelism && restore.states.size() == static_cast<size_t>(parallelism)) {
    return decode_state<IN>(restore.states[subtask]);
  }
  std::vector<StateItem<IN>> all;
  for (const auto& blob : restore.states) {
    SLUICE_ASSIGN_OR_RETURN(auto items, decode_state<IN>(blob));
    for (auto& it : items)
      if (!it.is_watermark) all.push_back(std::move(it));
  }
  size_t begin = all.size() * static_cast<size_t>(subtask) / static_cast<size_t>(parallelism);
  size_t end = all.size() * static_cast<size_t>(subtask + 1) / static_cast<size_t>(parallelism);
  return std::vector<StateItem<IN>>(std::make_move_iterator(all.begin() + begin),
                                    std::make_move_iterator(all.begin() + end));
}

}  // namespace sluice::async_io
