#include "state/checkpoint_storage.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

namespace sluice::state {

namespace {

constexpr std::string_view kMetaMagic = "SLUICE-CHECKPOINT-1\n";

std::string strip_uri(const std::string& root) {
  const std::string prefix = "file://";
  return root.rfind(prefix, 0) == 0 ? root.substr(prefix.size()) : root;
}

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// "chk-12" -> 12 (or -1); same for "savepoint-12".
int64_t parse_id(const std::string& name, const std::string& prefix) {
  if (name.rfind(prefix, 0) != 0) return -1;
  std::string rest = name.substr(prefix.size());
  if (rest.empty() || rest.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::strtoll(rest.c_str(), nullptr, 10);
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  ::closedir(d);
  return out;
}

}  // namespace

int64_t CheckpointMetadata::size_bytes() const {
  int64_t n = 0;
  for (const auto& op : operators)
    for (const auto& st : op.subtasks) {
      n += static_cast<int64_t>(st.operator_state.size());
      if (st.keyed) n += st.keyed->size_bytes();
    }
  for (const auto& c : channels) n += c.file.size;
  return n;
}

std::set<std::string> CheckpointMetadata::shared_files() const {
  std::set<std::string> out;
  for (const auto& op : operators)
    for (const auto& st : op.subtasks)
      if (st.keyed)
        for (const auto& f : st.keyed->files)
          if (f.shared) out.insert(f.path);
  return out;
}

CheckpointStorage::CheckpointStorage(const std::string& root, const std::string& job_name) {
  std::string r = strip_uri(root);
  while (r.size() > 1 && r.back() == '/') r.pop_back();
  job_dir_ = r + "/" + job_name;
}

std::string CheckpointStorage::dir_name(int64_t id, bool savepoint) {
  return (savepoint ? "savepoint-" : "chk-") + std::to_string(id);
}

SnapshotTarget CheckpointStorage::target(int64_t id, bool savepoint,
                                         const std::string& file_stem) const {
  SnapshotTarget t;
  if (savepoint) {
    t.job_dir = job_dir_ + "/" + dir_name(id, true);
    t.own_dir = ".";
    t.self_contained = true;
  } else {
    t.job_dir = job_dir_;
    t.own_dir = dir_name(id, false);
  }
  t.file_stem = file_stem;
  return t;
}

Status CheckpointStorage::write_metadata(const CheckpointMetadata& m) const {
  std::string data(kMetaMagic);
  ByteWriter w(data);
  Serde<CheckpointMetadata>::write(w, m);
  return write_file_atomic(job_dir_ + "/" + dir_name(m.id, m.savepoint) + "/_metadata", data);
}

Result<StoredCheckpoint> CheckpointStorage::load(const std::string& path_in) {
  std::string path = strip_uri(path_in);
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  std::string dir = path;
  if (!is_dir(path)) {
    auto slash = path.find_last_of('/');
    dir = slash == std::string::npos ? "." : path.substr(0, slash);
  }
  auto data = read_file(dir + "/_metadata");
  if (!data.is_ok()) {
    return Status::not_found("'" + path_in +
                             "' is not a completed checkpoint or savepoint (no readable _metadata)");
  }
  if (data->compare(0, kMetaMagic.size(), kMetaMagic) != 0) {
    return Status::corruption("'" + dir + "/_metadata' is not Sluice checkpoint metadata");
  }
  StoredCheckpoint c;
  SLUICE_RETURN_IF_ERROR(deserialize(std::string_view(*data).substr(kMetaMagic.size()), c.meta)
                             .with_context("reading '" + dir + "/_metadata'"));
  char* real = ::realpath(dir.c_str(), nullptr);
  c.dir = real ? real : dir;
  std::free(real);
  if (c.meta.savepoint) {
    c.base_dir = c.dir;
  } else {
    auto slash = c.dir.find_last_of('/');
    c.base_dir = slash == std::string::npos ? "." : c.dir.substr(0, slash);
  }
  return c;
}

Result<std::vector<StoredCheckpoint>> CheckpointStorage::list_completed() const {
  std::vector<std::pair<int64_t, std::string>> ids;
  for (const auto& n : list_dir(job_dir_)) {
    int64_t id = parse_id(n, "chk-");
    if (id >= 0 && ::access((job_dir_ + "/" + n + "/_metadata").c_str(), R_OK) == 0) {
      ids.emplace_back(id, n);
    }
  }
  std::sort(ids.begin(), ids.end());
  std::vector<StoredCheckpoint> out;
  for (const auto& [id, n] : ids) {
    SLUICE_ASSIGN_OR_RETURN(StoredCheckpoint c, load(job_dir_ + "/" + n));
    out.push_back(std::move(c));
  }
  return out;
}

int64_t CheckpointStorage::highest_id() const {
  int64_t best = 0;
  for (const auto& n : list_dir(job_dir_)) {
    best = std::max({best, parse_id(n, "chk-"), parse_id(n, "savepoint-")});
  }
  return best;
}

Status remove_tree(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return Status::ok();
  if (S_ISDIR(st.st_mode)) {
    for (const auto& n : list_dir(path)) SLUICE_RETURN_IF_ERROR(remove_tree(path + "/" + n));
    if (::rmdir(path.c_str()) != 0 && errno != ENOENT) {
      return Status::from_errno("cannot remove '" + path + "'", errno);
    }
  } else if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Status::from_errno("cannot remove '" + path + "'", errno);
  }
  return Status::ok();
}

Status CheckpointStorage::remove_incomplete() const {
  SLUICE_ASSIGN_OR_RETURN(auto completed, list_completed());
  std::set<std::string> referenced;
  for (const auto& c : completed) {
    auto files = c.meta.shared_files();
    referenced.insert(files.begin(), files.end());
  }
  for (const auto& n : list_dir(job_dir_)) {
    if (parse_id(n, "chk-") >= 0 && ::access((job_dir_ + "/" + n + "/_metadata").c_str(), F_OK) != 0) {
      SLUICE_RETURN_IF_ERROR(remove_tree(job_dir_ + "/" + n));
    }
  }
  for (const auto& n : list_dir(job_dir_ + "/shared")) {
    if (!referenced.count("shared/" + n)) ::unlink((job_dir_ + "/shared/" + n).c_str());
  }
  return Status::ok();
}

Status CheckpointStorage::discard(const StoredCheckpoint& c,
                                  const std::set<std::string>& keep_shared) const {
  // Metadata first: a half-deleted checkpoint must not look complete.
  if (::unlink((c.dir + "/_metadata").c_str()) != 0 && errno != ENOENT) {
    return Status::from_errno("cannot remove '" + c.dir + "/_metadata'", errno);
  }
  for (const auto& f : c.meta.shared_files()) {
    if (keep_shared.count(f)) continue;
    if (::unlink((c.base_dir + "/" + f).c_str()) != 0 && errno != ENOENT) {
      return Status::from_errno("cannot remove '" + f + "'", errno);
    }
  }
  return remove_tree(c.dir);
}

Result<StoredCheckpoint> CheckpointStorage::resolve_restore_point(const std::string& what,
                                                                  const std::string& root,
                                                                  const std::string& job_name) {
  if (what != "latest") return load(what);
  if (root.empty()) {
    return Status::invalid_argument("--restore latest needs --checkpoint-dir (where to look)");
  }
  CheckpointStorage s(root, job_name);
  SLUICE_ASSIGN_OR_RETURN(auto list, s.list_completed());
  if (list.empty()) {
    return Status::not_found("no completed checkpoint of job '" + job_name + "' in '" +
                             s.job_dir() + "'");
  }
  return std::move(list.back());
}

}  // namespace sluice::state
