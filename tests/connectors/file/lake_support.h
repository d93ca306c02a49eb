// Records and a writer job shared by the partitioned sink's and the lake
// source's tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "connectors/file/partitioned.h"
#include "tests/runtime/test_job.h"

namespace sluice::file_test {

/// A record with a time field (ts), strings that need escaping and a list.
struct Visit {
  int64_t id = 0;
  std::string user;
  std::string note;
  int64_t ts = 0;
  std::vector<std::string> pages;
  SLUICE_FIELDS(id, user, note, ts, pages)
  auto operator<=>(const Visit&) const = default;
};

inline constexpr int64_t kDay0 = 1'796'515'200'000;  // 2026-12-06T00:00:00Z

/// `n` visits over three days from kDay0, seeded.
inline std::vector<Visit> visits(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  const std::vector<std::string> notes{"plain", "comma, inside", "quote \"q\"", "line\nbreak", "", "caf\xc3\xa9"};
  std::vector<Visit> out;
  for (int i = 0; i < n; ++i) {
    out.push_back({i, "u" + std::to_string(rng() % 7), notes[rng() % notes.size()],
                   kDay0 + static_cast<int64_t>(rng() % (3 * 86'400)) * 1000, {"/", "/p/" + std::to_string(i)}});
  }
  return out;
}

/// Writes `in` through the partitioned sink `uri` (a job on the LocalExecutor).
inline void write_with_job(const std::string& uri, const std::vector<Visit>& in, int parallelism) {
  rt_test::TestJob job("write");
  auto sink = file::PartitionedFileSink<Visit>::from_uri(uri);
  ASSERT_TRUE(sink.is_ok()) << sink.status().to_string();
  job.env()
      .from_source<Visit>(std::make_shared<rt_test::VectorSource<Visit>>(in), runtime::WatermarkStrategy<Visit>::no_watermarks(),
                          "visits")
      .sink_to(*sink);
  ASSERT_TRUE(job.prepare(parallelism).is_ok());
  Status st = job.run();
  ASSERT_TRUE(st.is_ok()) << st.to_string();
}

}  // namespace sluice::file_test
