#include "connectors/file/file_splits.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>

namespace sluice::file {

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
    out.push_back({path, static_cast<int64_t>(st.st_size)});
    return out;
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status::invalid_argument("input '" + path + "' is neither a file nor a directory");
  }
  DIR* dir = ::opendir(path.c_str());
  if (!dir) return Status::from_errno("cannot list directory '" + path + "'", errno);
  while (dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name.empty() || name[0] == '.') continue;
    std::string full = path + (path.back() == '/' ? "" : "/") + name;
    struct stat fst {};
    if (::stat(full.c_str(), &fst) == 0 && S_ISREG(fst.st_mode)) {
      out.push_back({full, static_cast<int64_t>(fst.st_size)});
    }
  }
  ::closedir(dir);
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
