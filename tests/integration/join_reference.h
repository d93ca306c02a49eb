// The join tests' inputs and references (join_test.cc, the cluster test):
// seeded random events for it_join_job, the job's arguments, and
// nested-loop joins of the inputs — interval, and tumbling, sliding and
// session windows, inner and left outer — independent of Sluice.
#pragma once

#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "tests/integration/support.h"

namespace sluice::it {

inline std::string join_library() { return build_dir() + "/tests/integration/jobs/libit_join_job.so"; }

struct Ev {
  int64_t key, id, ts;
};
using Row = std::tuple<int64_t, int64_t, int64_t>;  // key, left id, right id (-1: none)

/// `n` records with keys in [0, keys), timestamps drifting up from 10'000
/// with up to 60 ms of disorder (the job allows 100).
inline std::vector<Ev> random_events(std::mt19937& rng, int n, int keys, int64_t first_id) {
  std::vector<Ev> out;
  int64_t base = 10'000;
  for (int i = 0; i < n; ++i) {
    base += std::uniform_int_distribution<int64_t>(0, 3)(rng);
    out.push_back({std::uniform_int_distribution<int64_t>(0, keys - 1)(rng), first_id + i,
                   base - std::uniform_int_distribution<int64_t>(0, 60)(rng)});
  }
  return out;
}

inline void write_events(const std::string& path, const std::vector<Ev>& evs) {
  std::vector<std::string> lines;
  lines.reserve(evs.size());
  for (const Ev& e : evs)
    lines.push_back("{\"key\":" + std::to_string(e.key) + ",\"id\":" + std::to_string(e.id) +
                    ",\"ts\":" + std::to_string(e.ts) + "}");
  write_lines(path, lines);
}

/// The job's configuration, as the reference sees it.
struct Spec {
  std::string mode = "interval";  // interval | inner | left-outer
  std::string window = "tumbling";
  int64_t lower = -20, upper = 20, size = 50, slide = 20, gap = 15;
  std::vector<std::string> args() const {
    auto arg = [](const std::string& k, int64_t v) { return k + "=" + std::to_string(v); };
    std::vector<std::string> a = {"--arg", "mode=" + mode};
    auto add = [&](std::string kv) {
      a.push_back("--arg");
      a.push_back(std::move(kv));
    };
    if (mode == "interval") {
      add(arg("lower", lower));
      add(arg("upper", upper));
      return a;
    }
    add("window=" + window);
    if (window == "session") add(arg("gap", gap));
    else add(arg("size", size));
    if (window == "sliding") add(arg("slide", slide));
    return a;
  }
  std::string name() const { return mode == "interval" ? mode : mode + "/" + window; }
};

/// Nested loops over the inputs: the rows the job must write, sorted.
inline std::vector<Row> reference(const Spec& spec, const std::vector<Ev>& left, const std::vector<Ev>& right) {
  std::vector<Row> out;
  if (spec.mode == "interval") {
    for (const Ev& l : left)
      for (const Ev& r : right)
        if (l.key == r.key && l.ts + spec.lower <= r.ts && r.ts <= l.ts + spec.upper) out.emplace_back(l.key, l.id, r.id);
    std::sort(out.begin(), out.end());
    return out;
  }
  // Windows as (key, start, end) -> members of each side.
  std::map<std::tuple<int64_t, int64_t, int64_t>, std::pair<std::vector<const Ev*>, std::vector<const Ev*>>> windows;
  if (spec.window == "session") {
    std::map<int64_t, std::vector<std::pair<const Ev*, bool>>> by_key;  // bool: is left
    for (const Ev& e : left) by_key[e.key].push_back({&e, true});
    for (const Ev& e : right) by_key[e.key].push_back({&e, false});
    for (auto& [key, evs] : by_key) {
      std::sort(evs.begin(), evs.end(), [](const auto& a, const auto& b) { return a.first->ts < b.first->ts; });
      // In timestamp order, a record starts a new session unless [ts, ts + gap)
      // overlaps or touches the current one.
      std::vector<std::pair<int64_t, int64_t>> sessions;
      for (const auto& [e, is_left] : evs) {
        if (sessions.empty() || e->ts > sessions.back().second) sessions.push_back({e->ts, e->ts + spec.gap});
        else sessions.back().second = std::max(sessions.back().second, e->ts + spec.gap);
        auto& w = windows[{key, sessions.size(), 0}];
        (is_left ? w.first : w.second).push_back(e);
      }
    }
  } else {
    const int64_t slide = spec.window == "sliding" ? spec.slide : spec.size;
    auto add = [&](const Ev& e, bool is_left) {
      for (int64_t s = e.ts - ((e.ts % slide) + slide) % slide; s > e.ts - spec.size; s -= slide) {
        auto& w = windows[{e.key, s, s + spec.size}];
        (is_left ? w.first : w.second).push_back(&e);
      }
    };
    for (const Ev& e : left) add(e, true);
    for (const Ev& e : right) add(e, false);
  }
  for (const auto& [w, members] : windows) {
    for (const Ev* l : members.first) {
      if (members.second.empty() && spec.mode == "left-outer") out.emplace_back(l->key, l->id, -1);
      for (const Ev* r : members.second) out.emplace_back(l->key, l->id, r->id);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

inline std::vector<Row> read_rows(const std::string& path) {
  std::vector<Row> out;
  simdjson::dom::parser parser;
  for (const std::string& line : read_lines(path)) {
    if (line.empty()) continue;
    simdjson::dom::element doc;
    int64_t k = 0, l = 0, r = 0;
    if (parser.parse(line).get(doc) || doc["key"].get(k) || doc["left"].get(l) || doc["right"].get(r)) {
      ADD_FAILURE() << "unreadable output line: " << line;
      continue;
    }
    out.emplace_back(k, l, r);
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// Where the outputs differ, in a few lines.
inline std::string diff(const std::vector<Row>& want, const std::vector<Row>& got) {
  std::vector<Row> missing, extra;
  std::set_difference(want.begin(), want.end(), got.begin(), got.end(), std::back_inserter(missing));
  std::set_difference(got.begin(), got.end(), want.begin(), want.end(), std::back_inserter(extra));
  auto show = [](const std::vector<Row>& v) {
    std::string s;
    for (size_t i = 0; i < std::min<size_t>(v.size(), 5); ++i)
      s += " (" + std::to_string(std::get<0>(v[i])) + "," + std::to_string(std::get<1>(v[i])) + "," +
           std::to_string(std::get<2>(v[i])) + ")";
    return s;
  };
  return std::to_string(missing.size()) + " missing" + show(missing) + "; " + std::to_string(extra.size()) +
         " extra (or duplicated)" + show(extra);
}

}  // namespace sluice::it
