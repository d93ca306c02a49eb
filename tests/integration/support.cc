#include "tests/integration/support.h"

#include <gtest/gtest.h>
#include <simdjson.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <random>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

namespace sluice::it {

namespace fs = std::filesystem;

const std::string& build_dir() {
  static const std::string dir = [] {
    const char* d = std::getenv("SLUICE_BUILD_DIR");
    if (!d || !*d) {
      std::cerr << "SLUICE_BUILD_DIR is not set: run the integration tests through ctest "
                   "(ctest --test-dir <build> -L integration) or set it to the build directory\n";
      std::abort();
    }
    return std::string(d);
  }();
  return dir;
}

std::string sluice_binary() { return build_dir() + "/sluice"; }
std::string clickstream_library() { return build_dir() + "/jobs/clickstream/libclickstream.so"; }
std::string cep_library() { return build_dir() + "/tests/integration/jobs/libit_cep_job.so"; }

void write_cep_activity(const std::string& path, int count, uint32_t seed, int users, int max_step_ms) {
  std::mt19937 rng(seed);
  struct E {
    std::string line;
    int64_t at;
  };
  std::vector<E> events;
  int64_t ts = 1'700'000'000'000;
  for (int i = 0; i < count; ++i) {
    ts += std::uniform_int_distribution<int>(0, max_step_ms)(rng);
    const int roll = std::uniform_int_distribution<int>(0, 99)(rng);
    const char* kind = roll < 55 ? "ok" : roll < 88 ? "fail" : "buy";
    const int amount = roll >= 88 ? std::uniform_int_distribution<int>(0, 1000)(rng) : 0;
    const std::string user = "u" + std::to_string(std::uniform_int_distribution<int>(0, users - 1)(rng));
    const int device = std::uniform_int_distribution<int>(0, 5)(rng);
    events.push_back({"{\"user\":\"" + user + "\",\"kind\":\"" + kind + "\",\"amount\":" +
                          std::to_string(amount) + ",\"device\":" + std::to_string(device) +
                          ",\"ts\":" + std::to_string(ts) + "}",
                      ts + std::uniform_int_distribution<int>(0, 1999)(rng)});
  }
  std::stable_sort(events.begin(), events.end(), [](const E& a, const E& b) { return a.at < b.at; });
  std::vector<std::string> lines;
  for (auto& e : events) lines.push_back(std::move(e.line));
  write_lines(path, lines);
}

std::string rules_library() { return build_dir() + "/tests/integration/jobs/libit_rules_job.so"; }
std::string sessions_library() {
  return build_dir() + "/tests/integration/jobs/libit_sessions_job.so";
}

CommandResult run_sluice(const std::vector<std::string>& args) {
  std::vector<std::string> argv{sluice_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv);
}

// ---------------------------------------------------------------------------

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "sluice-it-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) {
    ADD_FAILURE() << "cannot create a temporary directory from " << tmpl;
  }
  path_ = tmpl;
}

TempDir::~TempDir() {
  if (std::getenv("SLUICE_IT_KEEP")) {
    std::cerr << "keeping " << path_ << "\n";
    return;
  }
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::vector<std::string> read_lines(const std::string& path, bool* exists) {
  std::ifstream in(path, std::ios::binary);
  if (exists) *exists = static_cast<bool>(in);
  std::vector<std::string> lines;
  if (!in) return lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

void write_file(const std::string& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  if (!out) ADD_FAILURE() << "cannot write " << path;
}

void write_lines(const std::string& path, const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) {
    s += l;
    s += '\n';
  }
  write_file(path, s);
}

std::vector<std::string> files_with_prefix(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind(prefix, 0) == 0) out.push_back(dir + "/" + n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> published_files(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir, ec)) {
    if (e.is_regular_file() && e.path().filename().string()[0] != '.') out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ---------------------------------------------------------------------------

namespace {

// One parser per thread; the tests run on one thread.
simdjson::dom::parser& parser() {
  static simdjson::dom::parser p;
  return p;
}

std::optional<simdjson::dom::object> parse_object(std::string_view line) {
  simdjson::dom::element doc;
  if (parser().parse(line.data(), line.size()).get(doc)) return std::nullopt;
  simdjson::dom::object obj;
  if (doc.get(obj)) return std::nullopt;
  return obj;
}

bool get_string(simdjson::dom::object& o, const char* key, std::string& out) {
  std::string_view v;
  if (o[key].get(v)) return false;
  out.assign(v);
  return true;
}

bool get_int(simdjson::dom::object& o, const char* key, int64_t& out) { return !o[key].get(out); }

template <class Row, class Parse>
std::vector<Row> read_rows(const std::string& path, const char* what, Parse parse) {
  std::vector<Row> rows;
  bool exists = false;
  auto lines = read_lines(path, &exists);
  if (!exists) ADD_FAILURE() << "expected output file " << path << " (" << what << ") is missing";
  for (size_t i = 0; i < lines.size(); ++i) {
    if (is_blank(lines[i])) continue;
    Row r;
    if (!parse(lines[i], r)) {
      ADD_FAILURE() << path << ":" << (i + 1) << " is not a " << what << " row: " << lines[i];
      continue;
    }
    rows.push_back(std::move(r));
  }
  return rows;
}

}  // namespace

std::string to_string(const Click& c) {
  return "{" + c.user_id + " " + c.page_url + " " + c.event_type + " " + std::to_string(c.ts) + "}";
}

std::string to_string(const SessionRow& r) {
  return "{" + r.user_id + " [" + std::to_string(r.session_start) + ", " +
         std::to_string(r.session_end) + ") count " + std::to_string(r.count) + "}";
}

std::optional<Click> parse_click(std::string_view line) {
  auto obj = parse_object(line);
  if (!obj) return std::nullopt;
  Click c;
  if (!get_string(*obj, "user_id", c.user_id) || !get_string(*obj, "page_url", c.page_url) ||
      !get_string(*obj, "event_type", c.event_type) || !get_int(*obj, "ts", c.ts)) {
    return std::nullopt;
  }
  return c;
}

bool is_blank(std::string_view line) {
  return std::all_of(line.begin(), line.end(), [](char ch) { return ch == ' ' || ch == '\t'; });
}

std::vector<InputLine> read_input(const std::string& path) {
  std::vector<InputLine> out;
  auto lines = read_lines(path);
  out.reserve(lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    InputLine l;
    l.line_no = static_cast<int64_t>(i + 1);
    l.text = std::move(lines[i]);
    if (!is_blank(l.text)) l.click = parse_click(l.text);
    out.push_back(std::move(l));
  }
  return out;
}

std::vector<PageCountRow> read_page_counts(const std::string& path) {
  return read_rows<PageCountRow>(path, "page count", [](const std::string& line, PageCountRow& r) {
    auto o = parse_object(line);
    return o && get_int(*o, "window_start", r.window_start) &&
           get_int(*o, "window_end", r.window_end) && get_string(*o, "page_url", r.page_url) &&
           get_int(*o, "count", r.count);
  });
}

std::vector<DeadLetterRow> read_dead_letters(const std::string& path) {
  return read_rows<DeadLetterRow>(
      path, "dead letter", [](const std::string& line, DeadLetterRow& r) {
        auto o = parse_object(line);
        return o && get_string(*o, "reason", r.reason) && get_string(*o, "origin", r.origin) &&
               get_int(*o, "line", r.line) && get_string(*o, "payload", r.payload);
      });
}

std::vector<Click> read_clicks(const std::string& path) {
  return read_rows<Click>(path, "click event", [](const std::string& line, Click& c) {
    auto parsed = parse_click(line);
    if (parsed) c = *parsed;
    return parsed.has_value();
  });
}

std::vector<SessionRow> read_sessions(const std::string& path) {
  return read_rows<SessionRow>(path, "session", [](const std::string& line, SessionRow& r) {
    auto o = parse_object(line);
    return o && get_string(*o, "user_id", r.user_id) &&
           get_int(*o, "session_start", r.session_start) &&
           get_int(*o, "session_end", r.session_end) && get_int(*o, "count", r.count);
  });
}

std::vector<AlertRow> read_alerts(const std::string& path) {
  return read_rows<AlertRow>(path, "alert", [](const std::string& line, AlertRow& r) {
    auto o = parse_object(line);
    return o && get_string(*o, "user", r.user) && get_string(*o, "rule", r.rule) &&
           get_int(*o, "total", r.total);
  });
}

std::set<std::pair<std::string, std::string>> write_rules_input(const std::string& spends_path,
                                                                const std::string& rules_path,
                                                                int spends, int users, int rules,
                                                                uint64_t seed) {
  std::mt19937_64 rng(seed);
  const std::vector<std::string> categories = {"books", "games", "food", "travel", "music"};
  std::map<std::pair<std::string, std::string>, int64_t> totals;  // (user, category)
  std::vector<std::string> lines;
  for (int i = 0; i < spends; ++i) {
    std::string user = "u" + std::to_string(rng() % users);
    const std::string& cat = categories[rng() % categories.size()];
    int64_t amount = 1 + static_cast<int64_t>(rng() % 20);
    totals[{user, cat}] += amount;
    lines.push_back("{\"user\":\"" + user + "\",\"category\":\"" + cat + "\",\"amount\":" +
                    std::to_string(amount) + "}");
  }
  write_lines(spends_path, lines);
  // Typical total per (user, category): spends / users / 5 * 10.5.
  const int64_t typical = static_cast<int64_t>(spends) * 21 / (users * 10);
  std::set<std::pair<std::string, std::string>> alerts;
  lines.clear();
  for (int r = 0; r < rules; ++r) {
    std::string id = "r" + std::to_string(r);
    const std::string& cat = categories[r % categories.size()];
    int64_t threshold = typical / 2 + static_cast<int64_t>(rng() % static_cast<uint64_t>(typical + 1));
    lines.push_back("{\"id\":\"" + id + "\",\"category\":\"" + cat + "\",\"threshold\":" +
                    std::to_string(threshold) + "}");
    for (const auto& [uc, total] : totals)
      if (uc.second == cat && total >= threshold) alerts.insert({uc.first, id});
  }
  write_lines(rules_path, lines);
  return alerts;
}

// ---------------------------------------------------------------------------

int64_t window_start_of(int64_t ts, int64_t size_ms) {
  int64_t rem = ts % size_ms;
  if (rem < 0) rem += size_ms;
  return ts - rem;
}

Counts reference_counts(const std::vector<Click>& events, int64_t window_ms) {
  Counts c;
  for (const auto& e : events) ++c[{window_start_of(e.ts, window_ms), e.page_url}];
  return c;
}

Counts counts_of(const std::vector<PageCountRow>& rows, bool allow_updates) {
  Counts c;
  for (const auto& r : rows) {
    auto [it, fresh] = c.insert({{r.window_start, r.page_url}, r.count});
    if (!fresh) {
      if (!allow_updates) {
        ADD_FAILURE() << "window " << r.window_start << " page " << r.page_url
                      << " was emitted twice (counts " << it->second << " and " << r.count
                      << ") although no allowed lateness was set";
      }
      it->second = r.count;
    }
  }
  return c;
}

std::string diff_counts(const Counts& expected, const Counts& actual, size_t limit) {
  std::ostringstream s;
  size_t n = 0, total = 0;
  auto note = [&](const std::string& line) {
    ++total;
    if (n++ < limit) s << "  " << line << "\n";
  };
  for (const auto& [k, v] : expected) {
    auto it = actual.find(k);
    std::string where = "window " + std::to_string(k.first) + " page " + k.second;
    if (it == actual.end()) {
      note(where + ": missing (expected count " + std::to_string(v) + ")");
    } else if (it->second != v) {
      note(where + ": count " + std::to_string(it->second) + ", expected " + std::to_string(v));
    }
  }
  for (const auto& [k, v] : actual) {
    if (!expected.count(k)) {
      note("window " + std::to_string(k.first) + " page " + k.second + ": extra row with count " +
           std::to_string(v));
    }
  }
  if (total == 0) return {};
  std::string head = std::to_string(total) + " difference(s) in " + std::to_string(actual.size()) +
                     " rows vs " + std::to_string(expected.size()) + " expected:\n";
  return head + s.str();
}

std::vector<SessionRow> reference_sessions(
    const std::vector<std::pair<std::string, int64_t>>& events, int64_t gap_ms) {
  std::map<std::string, std::vector<int64_t>> by_user;
  for (const auto& [u, ts] : events) by_user[u].push_back(ts);
  std::vector<SessionRow> out;
  for (auto& [user, ts] : by_user) {
    std::sort(ts.begin(), ts.end());
    SessionRow cur{user, ts.front(), ts.front() + gap_ms, 0};
    for (int64_t t : ts) {
      if (t > cur.session_end) {  // [t, t + gap) neither overlaps nor touches the session
        out.push_back(cur);
        cur = SessionRow{user, t, t + gap_ms, 0};
      }
      cur.session_end = std::max(cur.session_end, t + gap_ms);
      ++cur.count;
    }
    out.push_back(cur);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<Click> multiset_minus(std::vector<Click> a, std::vector<Click> b,
                                  std::vector<Click>* missing) {
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  std::vector<Click> rest, lacking;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(rest));
  std::set_difference(b.begin(), b.end(), a.begin(), a.end(), std::back_inserter(lacking));
  if (missing) *missing = std::move(lacking);
  return rest;
}

}  // namespace sluice::it
