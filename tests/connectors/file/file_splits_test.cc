#include "connectors/file/file_splits.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "tests/connectors/file/temp_dir.h"

namespace sluice::file {
namespace {

using file_test::TempDir;
using file_test::write_file;

std::vector<FileInfo> files_of_sizes(const std::vector<int64_t>& sizes) {
  std::vector<FileInfo> out;
  for (size_t i = 0; i < sizes.size(); ++i) out.push_back({"f" + std::to_string(i), sizes[i]});
  return out;
}

/// Checks that the shares 0..count-1 together cover every byte of every
/// file exactly once, and that share i holds [total*i/count, total*(i+1)/count)
/// of the concatenation.
void expect_exact_cover(const std::vector<FileInfo>& files, int count) {
  int64_t total = 0;
  for (const auto& f : files) total += f.size;
  std::vector<std::vector<int>> covered(files.size());
  for (size_t i = 0; i < files.size(); ++i) covered[i].assign(static_cast<size_t>(files[i].size), 0);

  for (int share = 0; share < count; ++share) {
    int64_t share_bytes = 0;
    for (const FileRange& r : split_share(files, share, count)) {
      ASSERT_GE(r.file, 0);
      ASSERT_LT(r.file, static_cast<int>(files.size()));
      ASSERT_GE(r.start, 0);
      ASSERT_LT(r.start, r.end) << "empty ranges are not listed";
      ASSERT_LE(r.end, files[r.file].size);
      for (int64_t b = r.start; b < r.end; ++b) ++covered[r.file][static_cast<size_t>(b)];
      share_bytes += r.end - r.start;
    }
    // Reference: an even cut of the concatenated bytes.
    int64_t lo = total * share / count, hi = total * (share + 1) / count;
    EXPECT_EQ(share_bytes, hi - lo) << "share " << share << " of " << count;
  }
  for (size_t f = 0; f < files.size(); ++f) {
    for (size_t b = 0; b < covered[f].size(); ++b) {
      ASSERT_EQ(covered[f][b], 1) << "file " << f << " byte " << b << " with " << count << " shares";
    }
  }
}

TEST(SplitShare, CoversEveryByteExactlyOnceForParallelismOneToEight) {
  const std::vector<std::vector<int64_t>> layouts = {
      {1000},
      {1},
      {0},
      {3, 0, 5},
      {7, 7, 7, 7},
      {1, 2, 3, 4, 5, 6, 7, 8, 9},
      {4096, 17, 0, 0, 2049},
  };
  for (const auto& sizes : layouts) {
    for (int count = 1; count <= 8; ++count) {
      SCOPED_TRACE("layout of " + std::to_string(sizes.size()) + " files, " + std::to_string(count) +
                   " shares");
      expect_exact_cover(files_of_sizes(sizes), count);
    }
  }
}

TEST(SplitShare, CoversRandomLayoutsExactlyOnce) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<int64_t> sizes(1 + rng() % 6);
    for (auto& s : sizes) s = static_cast<int64_t>(rng() % 3 == 0 ? rng() % 3 : rng() % 2000);
    for (int count = 1; count <= 8; ++count) {
      SCOPED_TRACE("trial " + std::to_string(trial) + ", " + std::to_string(count) + " shares");
      expect_exact_cover(files_of_sizes(sizes), count);
    }
  }
}

TEST(SplitShare, AShareMaySpanAFileBoundary) {
  // 10 + 10 bytes in 3 shares: share 1 is [6, 13) = bytes 6..9 of f0 and 0..2 of f1.
  auto ranges = split_share(files_of_sizes({10, 10}), 1, 3);
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0].file, 0);
  EXPECT_EQ(ranges[0].start, 6);
  EXPECT_EQ(ranges[0].end, 10);
  EXPECT_EQ(ranges[1].file, 1);
  EXPECT_EQ(ranges[1].start, 0);
  EXPECT_EQ(ranges[1].end, 3);
}

TEST(ListInputFiles, APlainFileIsItsOwnList) {
  TempDir dir;
  std::string path = dir.file("events.ndjson");
  write_file(path, std::string(123, 'x'));
  auto files = list_input_files(path);
  ASSERT_TRUE(files.is_ok()) << files.status().to_string();
  ASSERT_EQ(files->size(), 1u);
  EXPECT_EQ((*files)[0].path, path);
  EXPECT_EQ((*files)[0].size, 123);
}

TEST(ListInputFiles, DirectoryListsVisibleRegularFilesOfItsTreeInPathOrder) {
  TempDir dir;
  write_file(dir.file("b.ndjson"), "bb\n");
  write_file(dir.file("a.ndjson"), "a\n");
  write_file(dir.file("c"), "");
  write_file(dir.file(".hidden"), "must not be read\n");
  write_file(dir.file(".b.ndjson.inprogress"), "sink leftovers\n");
  std::filesystem::create_directory(dir.file("subdir"));
  write_file(dir.file("subdir/nested.ndjson"), "listed\n");  // a partitioned layout: dt=.../part-0
  write_file(dir.file("subdir/.nested.ndjson.inprogress"), "sink leftovers\n");
  std::filesystem::create_directory(dir.file(".hidden-dir"));
  write_file(dir.file(".hidden-dir/x.ndjson"), "must not be read\n");

  for (const std::string& path : {dir.path(), dir.path() + "/"}) {
    SCOPED_TRACE(path);
    auto files = list_input_files(path);
    ASSERT_TRUE(files.is_ok()) << files.status().to_string();
    std::vector<std::string> names;
    std::vector<int64_t> sizes;
    for (const auto& f : *files) {
      names.push_back(f.path);
      sizes.push_back(f.size);
    }
    EXPECT_EQ(names, (std::vector<std::string>{dir.file("a.ndjson"), dir.file("b.ndjson"), dir.file("c"),
                                               dir.file("subdir/nested.ndjson")}));
    EXPECT_EQ(sizes, (std::vector<int64_t>{2, 3, 0, 7}));
  }
}

TEST(ListInputFiles, EmptyDirectoryIsAnEmptyList) {
  TempDir dir;
  auto files = list_input_files(dir.path());
  ASSERT_TRUE(files.is_ok());
  EXPECT_TRUE(files->empty());
}

TEST(ListInputFiles, MissingPathIsAnErrorNamingThePath) {
  TempDir dir;
  std::string missing = dir.file("no-such-file.ndjson");
  auto files = list_input_files(missing);
  ASSERT_FALSE(files.is_ok());
  EXPECT_NE(files.status().message().find(missing), std::string::npos) << files.status().to_string();
}

TEST(PathFromUri, StripsTheFileSchemeOnly) {
  EXPECT_EQ(path_from_uri("file:///data/x.ndjson"), "/data/x.ndjson");
  EXPECT_EQ(path_from_uri("/data/x.ndjson"), "/data/x.ndjson");
  EXPECT_EQ(path_from_uri("relative/x"), "relative/x");
}

}  // namespace
}  // namespace sluice::file
