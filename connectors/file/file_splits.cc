#include "connectors/file/file_splits.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <limits>

#include "connectors/file/zstd_stream.h"

namespace sluice::file {

namespace {

Status list_dir(const std::string& path, std::vector<FileInfo>& out, int depth) {
  if (depth > 32) return Status::invalid_argument("input '" + path + "' nests directories more than 32 deep");
  DIR* dir = ::opendir(path.c_str());
  if (!dir) return Status::from_errno("cannot list directory '" + path + "'", errno);
  std::vector<std::string> subdirs;
  while (dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    // Hidden: ".", "..", and files in progress (a sink's ".part-*").
    if (name.empty() || name[0] == '.') continue;
    std::string full = path + (path.back() == '/' ? "" : "/") + name;
    struct stat fst {};
    if (::stat(full.c_str(), &fst) != 0) continue;
    if (S_ISREG(fst.st_mode)) out.push_back({full, static_cast<int64_t>(fst.st_size), is_zstd_path(full)});
    else if (S_ISDIR(fst.st_mode)) subdirs.push_back(full);
  }
  ::closedir(dir);
  for (const auto& d : subdirs) SLUICE_RETURN_IF_ERROR(list_dir(d, out, depth + 1));
  return Status::ok();
}

}  // namespace

Result<std::vector<FileInfo>> list_input_files(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    // A missing input stays missing after a restart: kNotFound (permanent).
    if (errno == ENOENT || errno == ENOTDIR) {
      return Status::not_found("input '" + path + "' does not exist (No such file or directory)");
    }
    return Status::from_errno("cannot read input '" + path + "'", errno);
  }
  std::vector<FileInfo> out;
  if (S_ISREG(st.st_mode)) {
    out.push_back({path, static_cast<int64_t>(st.st_size), is_zstd_path(path)});
    return out;
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status::invalid_argument("input '" + path + "' is neither a file nor a directory");
  }
  SLUICE_RETURN_IF_ERROR(list_dir(path, out, 0));
  std::sort(out.begin(), out.end(), [](const FileInfo& a, const FileInfo& b) { return a.path < b.path; });
  return out;
}

std::vector<FileRange> split_share(const std::vector<FileInfo>& files, int index, int count) {
  int64_t total = 0;
  for (const auto& f : files) total += f.size;
  int64_t gs = total * index / count;
  int64_t ge = total * (index + 1) / count;
  std::vector<FileRange> out;
  int64_t base = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    int64_t fs = base, fe = base + files[i].size;
    if (files[i].compressed) {
      if (fs >= gs && fs < ge) out.push_back({static_cast<int>(i), 0, std::numeric_limits<int64_t>::max()});
      base = fe;
      continue;
    }
    int64_t s = std::max(gs, fs), e = std::min(ge, fe);
    if (s < e) out.push_back({static_cast<int>(i), s - fs, e - fs});
    base = fe;
  }
  return out;
}

std::string path_from_uri(const std::string& uri) {
  const std::string prefix = "file://";
  if (uri.rfind(prefix, 0) == 0) return uri.substr(prefix.size());
  return uri;
}

}  // namespace sluice::file
