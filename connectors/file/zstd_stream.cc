#include "connectors/file/zstd_stream.h"

#include <fcntl.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>

namespace sluice::file {

bool is_zstd_path(std::string_view path) {
  return path.size() > 4 && path.substr(path.size() - 4) == ".zst";
}

ZstdCompressor::ZstdCompressor(int level) : cctx_(ZSTD_createCCtx()) {
  ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 1);
}

ZstdCompressor::~ZstdCompressor() { ZSTD_freeCCtx(cctx_); }

namespace {

Status run(ZSTD_CCtx* cctx, std::string_view data, ZSTD_EndDirective mode, std::string& out) {
  ZSTD_inBuffer in{data.data(), data.size(), 0};
  const size_t chunk = ZSTD_CStreamOutSize();
  for (;;) {
    const size_t before = out.size();
    out.resize(before + chunk);
    ZSTD_outBuffer o{out.data() + before, chunk, 0};
    const size_t left = ZSTD_compressStream2(cctx, &o, &in, mode);
    out.resize(before + o.pos);
    if (ZSTD_isError(left)) return Status::internal(std::string("zstd compression failed: ") + ZSTD_getErrorName(left));
    const bool done = mode == ZSTD_e_continue ? in.pos == in.size : left == 0;
    if (done) return Status::ok();
  }
}

}  // namespace

Status ZstdCompressor::append(std::string_view data, std::string& out) {
  if (data.empty()) return Status::ok();
  open_frame_ = true;
  return run(cctx_, data, ZSTD_e_continue, out);
}

Status ZstdCompressor::end_frame(std::string& out) {
  if (!open_frame_) return Status::ok();
  open_frame_ = false;
  return run(cctx_, {}, ZSTD_e_end, out);
}

ZstdFileReader::~ZstdFileReader() { close(); }

void ZstdFileReader::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (dctx_) ZSTD_freeDCtx(dctx_);
  dctx_ = nullptr;
}

Status ZstdFileReader::open(const std::string& path) {
  close();
  path_ = path;
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) return Status::from_errno("cannot open '" + path + "'", errno);
  dctx_ = ZSTD_createDCtx();
  in_.resize(ZSTD_DStreamInSize());
  in_pos_ = in_.size();
  in_.resize(0);
  in_pos_ = 0;
  eof_ = false;
  last_ret_ = 0;
  return Status::ok();
}

Result<size_t> ZstdFileReader::read(char* buf, size_t cap) {
  ZSTD_outBuffer out{buf, cap, 0};
  while (out.pos == 0) {
    if (in_pos_ >= in_.size()) {
      if (eof_) {
        if (last_ret_ != 0) return Status::corruption("'" + path_ + "' ends inside a zstd frame (truncated)");
        return size_t{0};
      }
      in_.resize(ZSTD_DStreamInSize());
      ssize_t got = ::read(fd_, in_.data(), in_.size());
      if (got < 0) return Status::from_errno("reading '" + path_ + "'", errno);
      in_.resize(static_cast<size_t>(got));
      in_pos_ = 0;
      if (got == 0) {
        eof_ = true;
        continue;
      }
    }
    ZSTD_inBuffer in{in_.data(), in_.size(), in_pos_};
    const size_t ret = ZSTD_decompressStream(dctx_, &out, &in);
    in_pos_ = in.pos;
    if (ZSTD_isError(ret)) {
      return Status::corruption("'" + path_ + "' is not valid zstd: " + ZSTD_getErrorName(ret));
    }
    last_ret_ = ret;
  }
  return out.pos;
}

}  // namespace sluice::file
