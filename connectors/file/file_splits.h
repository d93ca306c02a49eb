// Splitting a set of files into byte ranges for parallel reading.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/common/serde.h"
#include "engine/common/status.h"

namespace sluice::file {

/// One input file as listed (and kept in a file source's checkpoint).
struct FileInfo {
  std::string path;
  int64_t size = 0;
  bool compressed = false;  // ".zst": read whole, front to back
  SLUICE_FIELDS(path, size, compressed)
};

/// The regular files of `path`: the file itself, or the non-hidden regular
/// files of a directory and of its non-hidden subdirectories (a partitioned
/// layout such as dt=2026-12-06/hour=14/), in path order.
Result<std::vector<FileInfo>> list_input_files(const std::string& path);

/// A byte range of one file. Lines starting in [start, end) belong to it;
/// the last one may run past `end`. A compressed file is one range from 0
/// with end = INT64_MAX (offsets are then in the decompressed bytes).
struct FileRange {
  int file = 0;  // index into the file list
  int64_t start = 0;
  int64_t end = 0;
  SLUICE_FIELDS(file, start, end)
};

/// Range `index` of `count` equal shares of the files' concatenated bytes,
/// cut at file boundaries (so it may hold pieces of several files). A
/// compressed file is not cut: it belongs whole to the share holding its
/// first byte.
std::vector<FileRange> split_share(const std::vector<FileInfo>& files, int index, int count);

/// Strips "file://" from a URI; a plain path is returned unchanged.
std::string path_from_uri(const std::string& uri);

}  // namespace sluice::file
