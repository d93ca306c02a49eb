#include "connectors/file/lake.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "connectors/file/zstd_stream.h"
#include "engine/common/time.h"
#include "engine/common/uri.h"

namespace sluice::file {

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "dddd": exactly `n` digits, as a number.
std::optional<int> digits(std::string_view s, size_t n) {
  if (s.size() != n) return std::nullopt;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

std::string two(int v) { return (v < 10 ? "0" : "") + std::to_string(v); }

// A parsed time of the folders seen so far: each part set by the level that
// formats it.
struct PartialTime {
  std::optional<int> year, month, day, hour, minute;
};

Status parse_time_value(const PartitionSpec& p, const std::string& v, PartialTime& t) {
  auto bad = [&](const char* shape) {
    return Status::invalid_argument("file source: folder " + p.name + "=" + v + " is not a " + shape +
                                    " (partition " + p.name + ":" + p.field + ")");
  };
  switch (p.format) {
    case PartitionSpec::Format::kDate: {
      auto y = digits(std::string_view(v).substr(0, 4), 4);
      auto m = v.size() == 10 && v[4] == '-' && v[7] == '-' ? digits(std::string_view(v).substr(5, 2), 2) : std::nullopt;
      auto d = v.size() == 10 ? digits(std::string_view(v).substr(8, 2), 2) : std::nullopt;
      if (!y || !m || !d || *m < 1 || *m > 12 || *d < 1 || *d > 31) return bad("date (2026-12-06)");
      t.year = y, t.month = m, t.day = d;
      break;
    }
    case PartitionSpec::Format::kMonth: {
      auto y = digits(std::string_view(v).substr(0, 4), 4);
      auto m = v.size() == 7 && v[4] == '-' ? digits(std::string_view(v).substr(5, 2), 2) : std::nullopt;
      if (!y || !m || *m < 1 || *m > 12) return bad("month (2026-12)");
      t.year = y, t.month = m;
      break;
    }
    case PartitionSpec::Format::kHour: {
      auto h = digits(v, 2);
      if (!h || *h > 23) return bad("hour (00-23)");
      t.hour = h;
      break;
    }
    case PartitionSpec::Format::kMinute: {
      auto m = digits(v, 2);
      if (!m || *m > 59) return bad("minute (00-59)");
      t.minute = m;
      break;
    }
    case PartitionSpec::Format::kValue:
      break;
  }
  return Status::ok();
}

bool is_time_level(const LakeSelection& s, const PartitionSpec& p) {
  return p.format != PartitionSpec::Format::kValue && p.field == s.time_field;
}

Status list_level(const std::string& dir, const LakeSelection& s, std::vector<std::string>& values,
                  std::vector<FileInfo>& out) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return Status::from_errno("cannot list directory '" + dir + "'", errno);
  std::vector<std::pair<std::string, bool>> entries;  // name, is directory
  Status st;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    // Not published (yet): hidden files (in progress) and _SUCCESS, _temporary.
    if (name.empty() || name[0] == '.' || name[0] == '_') continue;
    struct stat fst {};
    if (::stat((dir + "/" + name).c_str(), &fst) != 0) continue;  // gone meanwhile
    if (S_ISDIR(fst.st_mode)) entries.emplace_back(name, true);
    else if (S_ISREG(fst.st_mode)) entries.emplace_back(name, false);
  }
  ::closedir(d);
  std::sort(entries.begin(), entries.end());
  const size_t level = values.size();
  for (const auto& [name, is_dir] : entries) {
    const std::string full = dir + "/" + name;
    if (level < s.partitions.size()) {
      const PartitionSpec& p = s.partitions[level];
      if (!is_dir || name.rfind(p.name + "=", 0) != 0) {
        return Status::invalid_argument("file source: '" + full + "' is not a partition folder " + p.name +
                                        "=…; the partition= spec must list the folder levels the sink wrote, "
                                        "outermost first");
      }
      values.push_back(name.substr(p.name.size() + 1));
      auto range = partition_time_range(s, values);
      if (!range.is_ok()) return range.status();
      bool wanted = !*range || ((*range)->second > s.from_ms && (*range)->first < s.to_ms);
      if (wanted) st = list_level(full, s, values, out);
      values.pop_back();
      SLUICE_RETURN_IF_ERROR(st);
      continue;
    }
    if (is_dir) {
      return Status::invalid_argument("file source: '" + full + "' is a folder below the last partition level (" +
                                      (s.partitions.empty() ? std::string("none") : s.partitions.back().name) +
                                      "); list every level in partition=");
    }
    std::string plain = ends_with(name, ".zst") ? name.substr(0, name.size() - 4) : name;
    if (ends_with(plain, ".csv")) {
      return Status::invalid_argument("file source: '" + full +
                                      "' is CSV; the file source reads NDJSON (write the lake with format=ndjson)");
    }
    if (!ends_with(plain, ".ndjson") && !ends_with(plain, ".json") && !ends_with(plain, ".jsonl")) {
      return Status::invalid_argument("file source: '" + full +
                                      "' is not an NDJSON file (.ndjson, .json, .jsonl, optionally .zst); "
                                      "remove it or name it with a leading _ to have it skipped");
    }
    struct stat fst {};
    if (::stat(full.c_str(), &fst) != 0) continue;
    out.push_back({full, static_cast<int64_t>(fst.st_size), is_zstd_path(full)});
  }
  return Status::ok();
}

}  // namespace

Result<std::optional<std::pair<int64_t, int64_t>>> partition_time_range(const LakeSelection& s,
                                                                        const std::vector<std::string>& values) {
  PartialTime t;
  for (size_t i = 0; i < values.size() && i < s.partitions.size(); ++i) {
    if (is_time_level(s, s.partitions[i])) SLUICE_RETURN_IF_ERROR(parse_time_value(s.partitions[i], values[i], t));
  }
  if (!t.year || !t.month) return std::optional<std::pair<int64_t, int64_t>>();
  auto at = [](int y, int mo, int d, int h, int mi) {
    return parse_timestamp_ms(std::to_string(y) + "-" + two(mo) + "-" + two(d) + "T" + two(h) + ":" + two(mi));
  };
  int64_t start = 0, length = 0;
  if (!t.day) {
    SLUICE_ASSIGN_OR_RETURN(start, at(*t.year, *t.month, 1, 0, 0));
    int ny = *t.month == 12 ? *t.year + 1 : *t.year, nm = *t.month == 12 ? 1 : *t.month + 1;
    SLUICE_ASSIGN_OR_RETURN(int64_t end, at(ny, nm, 1, 0, 0));
    return std::optional(std::pair(start, end));
  }
  // An hour without a day (or a minute without an hour) does not narrow it.
  const bool hour = t.hour.has_value(), minute = hour && t.minute.has_value();
  SLUICE_ASSIGN_OR_RETURN(start, at(*t.year, *t.month, *t.day, hour ? *t.hour : 0, minute ? *t.minute : 0));
  length = minute ? 60'000 : hour ? 3'600'000 : 86'400'000;
  return std::optional(std::pair(start, start + length));
}

Result<std::vector<FileInfo>> list_lake_files(const std::string& dir, const LakeSelection& s) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      return Status::not_found("input '" + dir + "' does not exist (No such file or directory)");
    }
    return Status::from_errno("cannot read input '" + dir + "'", errno);
  }
  if (!S_ISDIR(st.st_mode)) return Status::invalid_argument("file source: partition= needs a directory; '" + dir + "' is not one");
  std::vector<FileInfo> out;
  std::vector<std::string> values;
  SLUICE_RETURN_IF_ERROR(list_level(dir, s, values, out));
  return out;
}

Result<FileSourceConfig> FileSourceConfig::parse(const std::string& uri) {
  FileSourceConfig c;
  c.uri = uri;
  const std::string what = "source '" + uri + "'";
  std::string path = path_from_uri(uri), query;
  if (auto q = path.find('?'); q != std::string::npos) {
    query = path.substr(q + 1);
    path = path.substr(0, q);
  }
  LakeSelection lake;
  bool partitioned = false, ranged = false;
  SLUICE_ASSIGN_OR_RETURN(auto params, parse_query(query, what));
  for (const auto& [k, v] : params) {
    char* end = nullptr;
    if (k == "rate") {
      c.rate = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || !(c.rate > 0)) return Status::invalid_argument(what + ": rate must be a positive number");
    } else if (k == "max-record-bytes") {
      unsigned long long n = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n < 1 || n > (size_t{1} << 30)) {
        return Status::invalid_argument(what + ": max-record-bytes must be 1..1073741824");
      }
      c.max_record_bytes = static_cast<size_t>(n);
    } else if (k == "max-field-bytes") {
      unsigned long long n = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n < 1 || n > (size_t{1} << 30)) {
        return Status::invalid_argument(what + ": max-field-bytes must be 1..1073741824");
      }
      c.max_field_bytes = static_cast<size_t>(n);
    } else if (k == "partition") {
      SLUICE_ASSIGN_OR_RETURN(lake.partitions, parse_partition_specs(v, what));
      partitioned = true;
    } else if (k == "from" || k == "to") {
      auto t = parse_timestamp_ms(v);
      if (!t.is_ok()) return Status::invalid_argument(what + ": " + k + ": " + t.status().message());
      (k == "from" ? lake.from_ms : lake.to_ms) = *t;
      ranged = true;
    } else if (k == "time_field") {
      lake.time_field = v;
    } else {
      return Status::invalid_argument(what + ": file source parameters are rate=<lines per second>, "
                                             "max-record-bytes=<bytes>, max-field-bytes=<bytes> and, for a partitioned directory, "
                                             "partition=NAME:FIELD[:FORMAT],..., from=, to=, time_field=");
    }
  }
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path.empty()) return Status::invalid_argument(what + " has no path");
  c.path = path;
  if (!partitioned) {
    if (ranged || !lake.time_field.empty()) {
      return Status::invalid_argument(what + ": from/to/time_field select partitions: give partition= too "
                                             "(the sink's spec, e.g. partition=dt:ts:date,hour:ts:hour)");
    }
    return c;
  }
  if (lake.from_ms >= lake.to_ms) return Status::invalid_argument(what + ": from must be before to");
  if (lake.time_field.empty() && ranged) {
    for (const auto& p : lake.partitions) {
      if (p.format != PartitionSpec::Format::kValue) {
        lake.time_field = p.field;
        break;
      }
    }
    if (lake.time_field.empty()) {
      return Status::invalid_argument(what + ": from/to need a time field: a partition level with a time format "
                                             "(NAME:FIELD:date|month|hour|minute) or time_field=");
    }
  }
  c.lake = std::move(lake);
  return c;
}

}  // namespace sluice::file
