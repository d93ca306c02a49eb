#include "tests/jobs/sessions_funnel/reference.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <simdjson.h>
#include <zstd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

namespace sluice::sf_test {

namespace {

// A .zst file decompressed with libzstd's streaming API (all its frames).
std::string unzstd(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  const std::string in((std::istreambuf_iterator<char>(f)), {});
  ZSTD_DStream* d = ZSTD_createDStream();
  ZSTD_initDStream(d);
  std::string out;
  ZSTD_inBuffer ib{in.data(), in.size(), 0};
  std::vector<char> buf(1 << 16);
  size_t ret = 0;
  while (ib.pos < ib.size) {
    ZSTD_outBuffer ob{buf.data(), buf.size(), 0};
    ret = ZSTD_decompressStream(d, &ob, &ib);
    if (ZSTD_isError(ret)) {
      ADD_FAILURE() << path << ": " << ZSTD_getErrorName(ret);
      break;
    }
    out.append(buf.data(), ob.pos);
  }
  if (ret != 0) ADD_FAILURE() << path << " ends inside a zstd frame";
  ZSTD_freeDStream(d);
  return out;
}

std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> out;
  std::istringstream zin;
  std::ifstream in;
  std::istream* is = &in;
  if (path.size() > 4 && path.substr(path.size() - 4) == ".zst") {
    zin.str(unzstd(path));
    is = &zin;
  } else {
    in.open(path);
  }
  std::string line;
  while (std::getline(*is, line)) out.push_back(line);
  return out;
}

bool blank(const std::string& l) { return l.find_first_not_of(" \t\r") == std::string::npos; }

// The path of a URL, by hand: scheme and host off, then query and fragment.
std::string path_of(const std::string& url) {
  std::string u = url;
  size_t scheme = u.find("://");
  if (scheme != std::string::npos && u.find('/') > scheme) {
    size_t slash = u.find('/', scheme + 3);
    u = slash == std::string::npos ? "/" : u.substr(slash);
  }
  size_t q = u.find_first_of("?#");
  return q == std::string::npos ? u : u.substr(0, q);
}

std::regex pattern_regex(const std::string& glob) {
  std::string re;
  for (char c : glob) {
    if (c == '*') re += ".*";
    else if (std::isalnum(static_cast<unsigned char>(c))) re += c;
    else re += std::string("\\") + c;
  }
  return std::regex(re);
}

struct Compiled {
  std::vector<std::regex> steps;
  explicit Compiled(const Settings& s) {
    for (const auto& p : s.funnel) steps.push_back(pattern_regex(p));
  }
  bool matches(size_t step, const std::string& path) const { return std::regex_match(path, steps[step]); }
};

int64_t minute(int64_t ts) { return ts - (((ts % 60'000) + 60'000) % 60'000); }

// Sessions of one user's events (sorted by ts): index ranges.
std::vector<std::pair<size_t, size_t>> split(const std::vector<View>& evs, int64_t gap) {
  std::vector<std::pair<size_t, size_t>> out;
  size_t begin = 0;
  for (size_t i = 1; i <= evs.size(); ++i) {
    if (i == evs.size() || evs[i].ts > evs[i - 1].ts + gap) {
      out.push_back({begin, i});
      begin = i;
    }
  }
  return out;
}

std::map<std::string, std::vector<View>> by_user(const std::vector<View>& views) {
  std::map<std::string, std::vector<View>> out;
  for (const auto& v : views) out[v.user_id].push_back(v);
  for (auto& [u, evs] : out) {
    std::sort(evs.begin(), evs.end(), [](const View& a, const View& b) {
      return a.ts != b.ts ? a.ts < b.ts : path_of(a.page_url) < path_of(b.page_url);
    });
  }
  return out;
}

// Times the steps were reached: scan in time order; step k counts at the
// first event of step k strictly after step k-1 was reached.
std::vector<int64_t> reached(const std::vector<View>& evs, size_t b, size_t e, const Compiled& c) {
  std::vector<int64_t> at;
  for (size_t i = b; i < e && at.size() < c.steps.size(); ++i) {
    const size_t k = at.size();
    if (c.matches(k, path_of(evs[i].page_url)) && (k == 0 || evs[i].ts > at.back())) at.push_back(evs[i].ts);
  }
  return at;
}

std::string str(simdjson::dom::element e) {
  std::string_view v;
  return e.get(v) == simdjson::SUCCESS ? std::string(v) : std::string("<not a string>");
}

std::vector<std::string> strs(simdjson::dom::element e) {
  std::vector<std::string> out;
  simdjson::dom::array a;
  if (e.get(a) != simdjson::SUCCESS) return out;
  for (auto x : a) out.push_back(str(x));
  return out;
}

int64_t num(simdjson::dom::element e) {
  int64_t v = 0;
  if (e.get(v) != simdjson::SUCCESS) ADD_FAILURE() << "not an integer: " << simdjson::to_string(e);
  return v;
}

}  // namespace

std::vector<View> read_valid_views(const std::string& path, int64_t* lines) {
  simdjson::dom::parser parser;
  std::vector<View> out;
  int64_t n = 0;
  for (const auto& l : lines_of(path)) {
    if (blank(l)) continue;
    ++n;
    simdjson::dom::element doc;
    if (parser.parse(l).get(doc) != simdjson::SUCCESS || !doc.is_object()) continue;
    View v;
    std::string_view s;
    int64_t ts = 0;
    if (doc["user_id"].get(s) != simdjson::SUCCESS) continue;
    v.user_id = s;
    if (doc["page_url"].get(s) != simdjson::SUCCESS) continue;
    v.page_url = s;
    if (doc["event_type"].get(s) != simdjson::SUCCESS) continue;
    v.event_type = s;
    if (doc["device"].get(s) != simdjson::SUCCESS) continue;
    v.device = s;
    if (doc["ts"].get(ts) != simdjson::SUCCESS) continue;
    v.ts = ts;
    static const std::set<std::string> kTypes{"view", "add_to_cart", "checkout", "purchase"};
    const std::string p = path_of(v.page_url);
    if (v.user_id.empty() || p.empty() || p[0] != '/' || !kTypes.count(v.event_type) || v.ts <= 0) continue;
    out.push_back(v);
  }
  if (lines) *lines = n;
  return out;
}

SessionTable reference_sessions(const std::vector<View>& views, const Settings& s) {
  const Compiled c(s);
  SessionTable out;
  for (const auto& [user, evs] : by_user(views)) {
    for (auto [b, e] : split(evs, s.gap_ms)) {
      SessionRow r;
      r.user_id = user;
      r.start = evs[b].ts;
      r.end = evs[e - 1].ts;
      r.duration = r.end - r.start;
      r.events = static_cast<int64_t>(e - b);
      std::set<std::string> devices;
      bool purchase = false;
      for (size_t i = b; i < e; ++i) {
        if (r.pages.size() < s.max_pages) r.pages.push_back(path_of(evs[i].page_url));
        else ++r.pages_more;
        devices.insert(evs[i].device);
        purchase = purchase || evs[i].event_type == "purchase";
      }
      r.devices.assign(devices.begin(), devices.end());
      if (r.devices.size() > 16) r.devices.resize(16);
      const auto at = reached(evs, b, e, c);
      r.furthest_step = static_cast<int64_t>(at.size()) - 1;
      r.furthest_step_name = at.empty() ? "" : s.funnel[at.size() - 1];
      r.converted = purchase;
      r.session_id = user + "@" + std::to_string(r.start);
      out[r.session_id] = r;
    }
  }
  return out;
}

FunnelTable reference_funnel(const std::vector<View>& views, const Settings& s) {
  const Compiled c(s);
  FunnelTable out;
  for (const auto& [user, evs] : by_user(views)) {
    for (auto [b, e] : split(evs, s.gap_ms)) {
      const auto at = reached(evs, b, e, c);
      for (size_t k = 0; k < at.size(); ++k) out[{minute(at[k]), static_cast<int64_t>(k)}].first += 1;
      if (!at.empty() && at.size() < s.funnel.size()) {
        out[{minute(evs[e - 1].ts), static_cast<int64_t>(at.size() - 1)}].second += 1;
      }
    }
  }
  return out;
}

SessionRow parse_session_row(const std::string& json) {
  static thread_local simdjson::dom::parser parser;
  SessionRow r;
  simdjson::dom::element d;
  if (parser.parse(json).get(d) != simdjson::SUCCESS) {
    ADD_FAILURE() << "session row is not JSON: " << json;
    return r;
  }
  r.session_id = str(d["session_id"]);
  r.user_id = str(d["user_id"]);
  r.start = num(d["session_start"]);
  r.end = num(d["session_end"]);
  r.duration = num(d["duration_ms"]);
  r.events = num(d["events"]);
  r.pages = strs(d["pages"]);
  r.pages_more = num(d["pages_more"]);
  r.devices = strs(d["devices"]);
  r.furthest_step = num(d["furthest_step"]);
  r.furthest_step_name = str(d["furthest_step_name"]);
  bool b = false;
  if (d["converted"].get(b) == simdjson::SUCCESS) r.converted = b;
  if (d["retracted"].get(b) == simdjson::SUCCESS) r.retracted = b;
  return r;
}

SessionTable apply_session_lines(const std::vector<std::string>& lines, std::vector<std::string>* problems,
                                 size_t* retractions) {
  SessionTable t;
  for (const auto& l : lines) {
    if (blank(l)) continue;
    SessionRow r = parse_session_row(l);
    if (r.retracted) {
      if (retractions) ++*retractions;
      if (t.erase(r.session_id) == 0 && problems) problems->push_back("retraction of an id not present: " + l);
    } else {
      t[r.session_id] = r;
    }
  }
  return t;
}

SessionTable apply_session_rows(const std::vector<std::string>& files, std::vector<std::string>* problems,
                                size_t* retractions) {
  SessionTable all;
  for (const auto& f : files) {
    SessionTable t = apply_session_lines(lines_of(f), problems, retractions);
    for (auto& [id, r] : t) {
      if (all.count(id) && problems) problems->push_back("session " + id + " in two files");
      all[id] = r;
    }
  }
  return all;
}

SessionTable latest_session_versions(const std::vector<std::string>& files, std::vector<std::string>* problems) {
  SessionTable latest;
  std::set<std::tuple<std::string, int64_t, bool>> seen;
  for (const auto& f : files) {
    for (const auto& l : lines_of(f)) {
      if (blank(l)) continue;
      SessionRow r = parse_session_row(l);
      // Exactly once: no version of a session twice.
      if (!seen.insert({r.session_id, r.events, r.retracted}).second && problems) {
        problems->push_back("duplicate row: " + l);
      }
      auto it = latest.find(r.session_id);
      // More events: newer; as many: the retraction of that version.
      if (it == latest.end() || r.events > it->second.events ||
          (r.events == it->second.events && r.retracted && !it->second.retracted)) {
        latest[r.session_id] = r;
      }
    }
  }
  std::erase_if(latest, [](const auto& kv) { return kv.second.retracted; });
  return latest;
}

FunnelTable latest_funnel_lines(const std::vector<std::string>& lines) {
  simdjson::dom::parser parser;
  FunnelTable t;
  for (const auto& l : lines) {
    if (blank(l)) continue;
    simdjson::dom::element d;
    if (parser.parse(l).get(d) != simdjson::SUCCESS) {
      ADD_FAILURE() << "funnel update is not JSON: " << l;
      continue;
    }
    t[{num(d["minute"]), num(d["step"])}] = {num(d["entered"]), num(d["dropped"])};
  }
  std::erase_if(t, [](const auto& kv) { return kv.second.first == 0 && kv.second.second == 0; });
  return t;
}

FunnelTable latest_funnel(const std::vector<std::string>& files) {
  FunnelTable all;
  for (const auto& f : files) {
    for (auto& [k, v] : latest_funnel_lines(lines_of(f))) {
      if (all.count(k)) ADD_FAILURE() << "minute " << k.first << " step " << k.second << " in two files";
      all[k] = v;
    }
  }
  return all;
}

std::map<std::string, std::vector<View>> read_late(const std::string& path) {
  simdjson::dom::parser parser;
  std::map<std::string, std::vector<View>> out;
  for (const auto& l : lines_of(path)) {
    if (blank(l)) continue;
    simdjson::dom::element d;
    if (parser.parse(l).get(d) != simdjson::SUCCESS) {
      ADD_FAILURE() << "late event is not JSON: " << l;
      continue;
    }
    View v{str(d["user_id"]), str(d["page_url"]), str(d["event_type"]), str(d["device"]), num(d["ts"])};
    out[str(d["late_for"])].push_back(v);
  }
  return out;
}

std::vector<View> minus(std::vector<View> all, std::vector<View> remove) {
  std::sort(all.begin(), all.end());
  std::sort(remove.begin(), remove.end());
  std::vector<View> out;
  std::set_difference(all.begin(), all.end(), remove.begin(), remove.end(), std::back_inserter(out));
  return out;
}

std::string to_string(const SessionRow& r) {
  std::ostringstream os;
  os << r.session_id << " [" << r.start << ".." << r.end << "] events " << r.events << " pages " << r.pages.size()
     << "+" << r.pages_more << " devices " << r.devices.size() << " step " << r.furthest_step << " '"
     << r.furthest_step_name << "' converted " << r.converted << (r.retracted ? " RETRACTED" : "");
  return os.str();
}

std::string diff_sessions(const SessionTable& expected, const SessionTable& actual, size_t limit) {
  std::ostringstream os;
  size_t n = 0;
  for (const auto& [id, r] : expected) {
    auto it = actual.find(id);
    if (it == actual.end()) {
      if (n++ < limit) os << "missing: " << to_string(r) << "\n";
    } else if (!(it->second == r)) {
      if (n++ < limit) os << "differs: expected " << to_string(r) << "\n          actual   " << to_string(it->second) << "\n";
    }
  }
  for (const auto& [id, r] : actual) {
    if (!expected.count(id) && n++ < limit) os << "extra: " << to_string(r) << "\n";
  }
  if (n > limit) os << "... " << n << " differences in all\n";
  return os.str();
}

std::string diff_funnel(const FunnelTable& expected, const FunnelTable& actual, size_t limit) {
  std::ostringstream os;
  size_t n = 0;
  auto row = [](const auto& k, const auto& v) {
    return "minute " + std::to_string(k.first) + " step " + std::to_string(k.second) + ": entered " +
           std::to_string(v.first) + " dropped " + std::to_string(v.second);
  };
  for (const auto& [k, v] : expected) {
    auto it = actual.find(k);
    if (it == actual.end()) {
      if (n++ < limit) os << "missing " << row(k, v) << "\n";
    } else if (it->second != v) {
      if (n++ < limit) os << "expected " << row(k, v) << ", got " << row(k, it->second) << "\n";
    }
  }
  for (const auto& [k, v] : actual) {
    if (!expected.count(k) && n++ < limit) os << "extra " << row(k, v) << "\n";
  }
  if (n > limit) os << "... " << n << " differences in all\n";
  return os.str();
}

}  // namespace sluice::sf_test
