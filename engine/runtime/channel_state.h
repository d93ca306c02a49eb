// The format of recorded in-flight input (unaligned checkpoints), in one
// place: the task writes it at a checkpoint and reads it on restore.
//
//   "SLUICE-CHANNELS-1\n", then per channel:
//   varint job edge, varint producer subtask, bytes (varint length + frames)
//
// The frames are exactly the bytes the channel carried (frames.h), so a
// restored task replays them through its normal input path.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/status.h"

namespace sluice::runtime {

/// The recorded input of one input channel (edge, producer) of a task.
struct RecordedChannel {
  int edge = 0;
  int producer = 0;
  std::string frames;
};

std::string encode_channel_state(const std::vector<RecordedChannel>& channels);
/// `what` names the data in errors (e.g. the file path).
Result<std::vector<RecordedChannel>> decode_channel_state(std::string_view data,
                                                          const std::string& what);

}  // namespace sluice::runtime
