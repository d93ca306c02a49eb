// zstd streams (libzstd) for files: a compressor that the partitioned file
// sink ends a frame of at every checkpoint (a file cut after any frame is a
// valid .zst file: frames concatenate), and a reader that decompresses a
// .zst file front to back for the file source.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/common/status.h"

struct ZSTD_CCtx_s;
struct ZSTD_DCtx_s;

namespace sluice::file {

/// True for paths ending in ".zst".
bool is_zstd_path(std::string_view path);

/// Compresses appended bytes into `out` (the caller writes and clears it).
/// One owner, one thread.
class ZstdCompressor {
 public:
  /// `level`: 1 (fast) .. 19 (small); 3 is zstd's default.
  explicit ZstdCompressor(int level = 3);
  ~ZstdCompressor();
  ZstdCompressor(const ZstdCompressor&) = delete;
  ZstdCompressor& operator=(const ZstdCompressor&) = delete;

  Status append(std::string_view data, std::string& out);
  /// Ends the current frame: everything appended so far is in `out`, and
  /// the bytes written so far form a complete .zst file.
  Status end_frame(std::string& out);

 private:
  ZSTD_CCtx_s* cctx_;
  bool open_frame_ = false;
};

/// Reads a .zst file's decompressed bytes in order. One owner, one thread.
class ZstdFileReader {
 public:
  ZstdFileReader() = default;
  ~ZstdFileReader();
  ZstdFileReader(const ZstdFileReader&) = delete;
  ZstdFileReader& operator=(const ZstdFileReader&) = delete;

  Status open(const std::string& path);
  /// Up to `cap` decompressed bytes into `buf`; 0 at the end of the file.
  /// A file that ends inside a frame is an error (truncated).
  Result<size_t> read(char* buf, size_t cap);
  void close();

 private:
  std::string path_;
  int fd_ = -1;
  ZSTD_DCtx_s* dctx_ = nullptr;
  std::string in_;
  size_t in_pos_ = 0;
  bool eof_ = false;
  size_t last_ret_ = 0;  // 0: at a frame boundary
};

}  // namespace sluice::file
