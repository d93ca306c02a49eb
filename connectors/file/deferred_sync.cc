#include "connectors/file/deferred_sync.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace sluice::file {

DeferredSync::~DeferredSync() {
  close_all(open_);
  for (auto& b : queue_) close_all(b);
}

void DeferredSync::close_all(Batch& b) {
  for (auto& [fd, path] : b.files)
    if (fd >= 0) ::close(fd);
  b.files.clear();
}

void DeferredSync::add_file(int fd, std::string path) { open_.files.emplace_back(fd, std::move(path)); }

void DeferredSync::add_dir(const std::string& dir) {
  if (std::find(open_.dirs.begin(), open_.dirs.end(), dir) == open_.dirs.end()) open_.dirs.push_back(dir);
}

uint64_t DeferredSync::seal() {
  open_.number = ++sealed_;
  std::lock_guard lk(mu_);
  queue_.push_back(std::move(open_));
  open_ = Batch{};
  return sealed_;
}

Status DeferredSync::sync_through(uint64_t batch) {
  std::lock_guard sync(sync_mu_);
  while (true) {
    Batch b;
    {
      std::lock_guard lk(mu_);
      if (queue_.empty() || queue_.front().number > batch) return error_;
      b = std::move(queue_.front());
      queue_.pop_front();
      if (!error_.is_ok()) {  // nothing after a failed sync is trusted: just close
        close_all(b);
        continue;
      }
    }
    Status st;
    for (auto& [fd, path] : b.files) {
      if (st.is_ok() && ::fdatasync(fd) != 0) st = Status::from_errno("syncing '" + path + "'", errno);
      ::close(fd);
      fd = -1;
    }
    for (const auto& dir : b.dirs) {
      if (!st.is_ok()) break;
      int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) {
        st = Status::from_errno("cannot open directory '" + dir + "'", errno);
        break;
      }
      if (::fsync(fd) != 0) st = Status::from_errno("syncing directory '" + dir + "'", errno);
      ::close(fd);
    }
    if (!st.is_ok()) {
      std::lock_guard lk(mu_);
      if (error_.is_ok()) error_ = st;
      failed_.store(true, std::memory_order_release);
    }
  }
}

Status DeferredSync::error() const {
  std::lock_guard lk(mu_);
  return error_;
}

}  // namespace sluice::file
