// The clickstream job run end to end by `sluice run-local` on input from
// `sluice gen`, compared with counts the test computes itself.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "tests/integration/support.h"

namespace sluice::it {
namespace {

constexpr int64_t kStartTs = 1'700'000'000'000;
constexpr int64_t kEventsPerSecond = 1000;  // event time advances 1 ms per generated line

/// Options of one `sluice gen` run (seeded: the same options, the same lines).
struct Gen {
  int64_t count = 100'000;
  int64_t seed = 42;
  int64_t start_ts = kStartTs;
  double out_of_order = 0.2;
  std::string max_delay = "2s";
  double late = 0;
  std::string late_delay = "5m";
  double malformed = 0.01;
};

::testing::AssertionResult generate(const Gen& g, const std::string& path) {
  std::vector<std::string> args = {"gen",
                                   "--count",
                                   std::to_string(g.count),
                                   "--seed",
                                   std::to_string(g.seed),
                                   "--users",
                                   "2000",
                                   "--pages",
                                   "200",
                                   "--start-ts",
                                   std::to_string(g.start_ts),
                                   "--events-per-second",
                                   std::to_string(kEventsPerSecond),
                                   "--out-of-order",
                                   std::to_string(g.out_of_order),
                                   "--max-delay",
                                   g.max_delay,
                                   "--late",
                                   std::to_string(g.late),
                                   "--late-delay",
                                   g.late_delay,
                                   "--malformed",
                                   std::to_string(g.malformed),
                                   "--output",
                                   path};
  auto r = run_sluice(args);
  if (r.exit_code != 0) return ::testing::AssertionFailure() << r.describe(args);
  return ::testing::AssertionSuccess();
}

/// Arguments of one clickstream run.
struct Job {
  int parallelism = 1;
  int sink_parallelism = 1;
  int64_t window_ms = 10'000;
  int64_t out_of_orderness_ms = 2'000;
  int64_t allowed_lateness_ms = 0;
  bool late_output = false;
};

/// Where one run wrote its results.
struct Outputs {
  std::vector<PageCountRow> rows;   // in the order written (per sink file)
  std::vector<DeadLetterRow> dead;  // the dead-letter file
  std::vector<Click> late;          // the late-event file (when asked for)
};

::testing::AssertionResult run_clickstream(const TempDir& dir, const std::string& input,
                                           const Job& j, Outputs& out) {
  const std::string tag =
      "p" + std::to_string(j.parallelism) + "-s" + std::to_string(j.sink_parallelism);
  std::vector<std::string> args = {
      "run-local",     clickstream_library(),
      "--parallelism", std::to_string(j.parallelism),
      "--arg",         "source=file://" + input,
      "--arg",         "sink=" + dir.uri(tag + "-counts.ndjson"),
      "--arg",         "dlq=" + dir.uri(tag + "-dlq.ndjson"),
      "--arg",         "window=" + std::to_string(j.window_ms) + "ms",
      "--arg",         "out_of_orderness=" + std::to_string(j.out_of_orderness_ms) + "ms",
      "--arg",         "allowed_lateness=" + std::to_string(j.allowed_lateness_ms) + "ms",
      "--arg",         "sink_parallelism=" + std::to_string(j.sink_parallelism)};
  if (j.late_output) {
    args.push_back("--arg");
    args.push_back("late=" + dir.uri(tag + "-late.ndjson"));
  }
  auto r = run_sluice(args);
  if (r.exit_code != 0) return ::testing::AssertionFailure() << r.describe(args);
  // One sink writer: the file itself; several: <stem>-<i><ext> (connectors/file/ndjson.h).
  for (int i = 0; i < j.sink_parallelism; ++i) {
    std::string name = j.sink_parallelism == 1 ? tag + "-counts.ndjson"
                                               : tag + "-counts-" + std::to_string(i) + ".ndjson";
    auto rows = read_page_counts(dir.file(name));
    out.rows.insert(out.rows.end(), rows.begin(), rows.end());
  }
  out.dead = read_dead_letters(dir.file(tag + "-dlq.ndjson"));
  if (j.late_output) out.late = read_clicks(dir.file(tag + "-late.ndjson"));
  return ::testing::AssertionSuccess();
}

/// The input as the test reads it, with the facts the checks need.
struct Input {
  std::vector<InputLine> lines;
  std::vector<Click> valid;                                // every line that parses, in file order
  std::vector<std::pair<int64_t, std::string>> malformed;  // (line number, text)
  int64_t non_blank = 0;
  int64_t out_of_order = 0;  // valid lines older than an earlier line
};

Input read_and_classify(const std::string& path) {
  Input in;
  in.lines = read_input(path);
  int64_t max_ts = INT64_MIN;
  for (const auto& l : in.lines) {
    if (is_blank(l.text)) continue;
    ++in.non_blank;
    if (!l.click) {
      in.malformed.emplace_back(l.line_no, l.text);
      continue;
    }
    in.valid.push_back(*l.click);
    if (l.click->ts < max_ts) ++in.out_of_order;
    max_ts = std::max(max_ts, l.click->ts);
  }
  return in;
}

/// Every dead letter is one malformed input line (right line number, the
/// raw line as payload, the input path as origin, a reason), and every
/// malformed line is exactly one dead letter.
void expect_dead_letters_are_the_malformed_lines(const Input& in, const std::string& input_path,
                                                 const std::vector<DeadLetterRow>& dead) {
  std::vector<std::pair<int64_t, std::string>> got;
  for (const auto& d : dead) {
    EXPECT_FALSE(d.reason.empty()) << "dead letter of line " << d.line << " has no reason";
    EXPECT_EQ(d.origin, input_path) << "dead letter of line " << d.line;
    got.emplace_back(d.line, d.payload);
  }
  auto expected = in.malformed;
  std::sort(got.begin(), got.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(got.size(), expected.size()) << "dead letters vs malformed lines";
  std::vector<std::pair<int64_t, std::string>> missing, extra;
  std::set_difference(expected.begin(), expected.end(), got.begin(), got.end(),
                      std::back_inserter(missing));
  std::set_difference(got.begin(), got.end(), expected.begin(), expected.end(),
                      std::back_inserter(extra));
  for (size_t i = 0; i < std::min<size_t>(missing.size(), 5); ++i) {
    ADD_FAILURE() << "malformed line " << missing[i].first
                  << " has no dead letter: " << missing[i].second;
  }
  for (size_t i = 0; i < std::min<size_t>(extra.size(), 5); ++i) {
    ADD_FAILURE() << "dead letter for line " << extra[i].first
                  << " that is not a malformed input line (or a duplicate): " << extra[i].second;
  }
}

int64_t sum_counts(const Counts& c) {
  int64_t s = 0;
  for (const auto& [k, v] : c) s += v;
  return s;
}

// ---------------------------------------------------------------------------
// 1. Out-of-order (within the bound) and malformed input: the sink holds
//    exactly the reference counts, the dead-letter file exactly the
//    malformed lines — at any parallelism and number of sink writers.

struct Parallelism {
  int job;
  int sink;
};
void PrintTo(const Parallelism& p, std::ostream* os) {
  *os << "parallelism " << p.job << ", sink writers " << p.sink;
}

class ClickstreamMatchesReference : public ::testing::TestWithParam<Parallelism> {};

TEST_P(ClickstreamMatchesReference, CountsPerWindowAndPageEqualTheReferenceExactly) {
  const Parallelism p = GetParam();
  TempDir dir;
  const std::string input = dir.file("clicks.ndjson");
  Gen g;
  g.count = 200'000;
  g.seed = 11;
  g.out_of_order = 0.3;  // up to 2 s old: within the job's 2 s bound, so never late
  g.malformed = 0.01;
  ASSERT_TRUE(generate(g, input));

  Input in = read_and_classify(input);
  ASSERT_EQ(in.non_blank, g.count);
  ASSERT_GT(in.out_of_order, g.count / 10) << "the input should be out of order";
  ASSERT_GT(in.malformed.size(), 0u) << "the input should hold malformed lines";

  Job j;
  j.parallelism = p.job;
  j.sink_parallelism = p.sink;
  Outputs out;
  ASSERT_TRUE(run_clickstream(dir, input, j, out));

  for (const auto& r : out.rows) {
    ASSERT_EQ(r.window_end - r.window_start, j.window_ms)
        << "row for " << r.page_url << " at " << r.window_start << " is not a " << j.window_ms
        << " ms window";
    ASSERT_EQ(window_start_of(r.window_start, j.window_ms), r.window_start)
        << "window start " << r.window_start << " is not aligned";
  }
  const Counts expected = reference_counts(in.valid, j.window_ms);
  EXPECT_EQ(diff_counts(expected, counts_of(out.rows)), "");
  EXPECT_EQ(out.rows.size(), expected.size());
  expect_dead_letters_are_the_malformed_lines(in, input, out.dead);
}

INSTANTIATE_TEST_SUITE_P(Parallelism, ClickstreamMatchesReference,
                         ::testing::Values(Parallelism{1, 1}, Parallelism{4, 1}, Parallelism{4, 3}),
                         [](const auto& info) {
                           return "p" + std::to_string(info.param.job) + "_sink" +
                                  std::to_string(info.param.sink);
                         });

// ---------------------------------------------------------------------------
// 2. Late events.

/// Checks that hold for every run with a late output, at any parallelism:
/// each line is accounted for exactly once (counted, late or dead letter),
/// late events are real input events that were not counted, and each late
/// event really was behind the watermark. `last` are the final counts.
void expect_late_events_accounted_for(const Input& in, const Job& j, const Outputs& out,
                                      const Counts& last) {
  // Every non-blank line exactly once: counted, late or dead.
  EXPECT_EQ(sum_counts(last) + static_cast<int64_t>(out.late.size()) +
                static_cast<int64_t>(out.dead.size()),
            in.non_blank)
      << "sum of counts " << sum_counts(last) << " + late " << out.late.size() << " + dead letters "
      << out.dead.size() << " should be the " << in.non_blank << " input lines";

  // Late events are input events, each at most once ...
  std::vector<Click> not_in_input;
  std::vector<Click> counted = multiset_minus(in.valid, out.late, &not_in_input);
  EXPECT_TRUE(not_in_input.empty())
      << not_in_input.size() << " late events are not input events, e.g. "
      << to_string(not_in_input.front());
  // ... and none of them is counted: the counts are those of the rest.
  EXPECT_EQ(diff_counts(reference_counts(counted, j.window_ms), last), "");

  // A late event was behind the watermark, which is at most the highest
  // timestamp read before it minus the bound (minus 1 ms) whatever the
  // parallelism: its window's last ms plus the allowed lateness must be
  // below that. Duplicate events are matched to their latest lines (the
  // bound only grows along the file), so the check is never too strict.
  std::map<Click, std::vector<int64_t>> max_before;  // event -> highest ts before each occurrence
  int64_t max_ts = INT64_MIN;
  for (const auto& l : in.lines) {
    if (!l.click) continue;
    max_before[*l.click].push_back(max_ts);
    max_ts = std::max(max_ts, l.click->ts);
  }
  std::map<Click, size_t> used;
  int reported = 0;
  for (const Click& e : out.late) {
    auto it = max_before.find(e);
    if (it == max_before.end()) continue;  // reported above
    size_t k = used[e]++;
    if (k >= it->second.size()) continue;  // reported above
    const int64_t prior_max = it->second[it->second.size() - 1 - k];
    const int64_t window_end = window_start_of(e.ts, j.window_ms) + j.window_ms;
    if (!(window_end - 1 + j.allowed_lateness_ms < prior_max - j.out_of_orderness_ms) &&
        reported++ < 5) {
      ADD_FAILURE() << "event " << to_string(e)
                    << " went to the late output, but its window ends at " << window_end
                    << " and the highest timestamp before it was " << prior_max
                    << ": it cannot have been behind the watermark";
    }
  }
}

class ClickstreamLateEvents : public ::testing::TestWithParam<int> {};

TEST_P(ClickstreamLateEvents, GoToTheLateOutputAndAreNeverCounted) {
  const int parallelism = GetParam();
  TempDir dir;
  // Watermarks are emitted between poll batches (engine/runtime/source.h):
  // before the first one nothing can be late. The input therefore starts
  // with 5000 lines without late events, then continues the same event-time
  // line with 2% events from 1-2 minutes ago.
  Gen warmup;
  warmup.count = 5'000;
  warmup.seed = 21;
  warmup.out_of_order = 0.1;
  warmup.malformed = 0.005;
  Gen g = warmup;
  g.count = 145'000;
  g.seed = 22;
  g.start_ts = kStartTs + warmup.count * 1000 / kEventsPerSecond;
  g.late = 0.02;
  g.late_delay = "1m";
  ASSERT_TRUE(generate(warmup, dir.file("warmup.ndjson")));
  ASSERT_TRUE(generate(g, dir.file("main.ndjson")));
  const std::string input = dir.file("clicks.ndjson");
  {
    auto a = read_lines(dir.file("warmup.ndjson")), b = read_lines(dir.file("main.ndjson"));
    a.insert(a.end(), b.begin(), b.end());
    write_lines(input, a);
  }
  Input in = read_and_classify(input);
  ASSERT_EQ(in.non_blank, warmup.count + g.count);

  // Generated late events: `late_delay` (1 min) or more behind the line's
  // base time start + index ms; out-of-order ones are at most 2 s behind.
  std::vector<Click> generated_late;
  for (size_t i = 0; i < in.lines.size(); ++i) {
    const auto& c = in.lines[i].click;
    if (c && c->ts <= kStartTs + static_cast<int64_t>(i) - 60'000) generated_late.push_back(*c);
  }
  ASSERT_GT(generated_late.size(), 1000u) << "the input should hold late events";

  Job j;
  j.parallelism = parallelism;
  j.late_output = true;
  Outputs out;
  ASSERT_TRUE(run_clickstream(dir, input, j, out));

  expect_late_events_accounted_for(in, j, out, counts_of(out.rows));
  expect_dead_letters_are_the_malformed_lines(in, input, out.dead);

  if (parallelism == 1) {
    // One reader: the watermark follows the file, a minute-old event is
    // always behind it, and an event within the bound never is.
    std::vector<Click> late_not_generated_late, generated_late_not_in_output;
    multiset_minus(out.late, generated_late, &generated_late_not_in_output);
    multiset_minus(generated_late, out.late, &late_not_generated_late);
    EXPECT_EQ(generated_late_not_in_output.size(), 0u)
        << "generated-late events missing from the late output, e.g. "
        << (generated_late_not_in_output.empty() ? ""
                                                 : to_string(generated_late_not_in_output.front()));
    EXPECT_EQ(late_not_generated_late.size(), 0u)
        << "events within the out-of-orderness bound in the late output, e.g. "
        << (late_not_generated_late.empty() ? "" : to_string(late_not_generated_late.front()));
  }
}

INSTANTIATE_TEST_SUITE_P(Parallelism, ClickstreamLateEvents, ::testing::Values(1, 4),
                         [](const auto& info) { return "p" + std::to_string(info.param); });

/// Rows per (window, page) in output order.
std::map<WindowPage, std::vector<int64_t>> emissions(const std::vector<PageCountRow>& rows) {
  std::map<WindowPage, std::vector<int64_t>> e;
  for (const auto& r : rows) e[{r.window_start, r.page_url}].push_back(r.count);
  return e;
}

/// Updated results only grow, and some window was updated at all.
void expect_updates_grow(const std::vector<PageCountRow>& rows) {
  auto e = emissions(rows);
  size_t updated = 0;
  int reported = 0;
  for (const auto& [k, counts] : e) {
    if (counts.size() > 1) ++updated;
    if (!std::is_sorted(counts.begin(), counts.end()) && reported++ < 5) {
      std::string seq;
      for (auto c : counts) seq += " " + std::to_string(c);
      ADD_FAILURE() << "window " << k.first << " page " << k.second
                    << ": updated counts went down:" << seq;
    }
  }
  EXPECT_GT(updated, 0u) << "no window fired an updated result: the late events did not "
                            "exercise the allowed lateness";
}

class ClickstreamAllowedLateness : public ::testing::TestWithParam<int> {};

TEST_P(ClickstreamAllowedLateness, LateEventsWithinItUpdateTheResult) {
  const int parallelism = GetParam();
  TempDir dir;
  const std::string input = dir.file("clicks.ndjson");
  // 5% of events 3-6 s old: behind the watermark (bound 2 s) but well within
  // an allowed lateness of 10 s, so every event must end up counted.
  Gen g;
  g.count = 100'000;
  g.seed = 31;
  g.out_of_order = 0.1;
  g.late = 0.05;
  g.late_delay = "3s";
  g.malformed = 0.005;
  ASSERT_TRUE(generate(g, input));
  Input in = read_and_classify(input);

  Job j;
  j.parallelism = parallelism;
  j.allowed_lateness_ms = 10'000;
  j.late_output = true;
  Outputs out;
  ASSERT_TRUE(run_clickstream(dir, input, j, out));

  EXPECT_EQ(out.late.size(), 0u) << "no event is later than the allowed lateness, e.g. "
                                 << (out.late.empty() ? "" : to_string(out.late.front()));
  EXPECT_EQ(diff_counts(reference_counts(in.valid, j.window_ms), counts_of(out.rows, true)), "")
      << "the last row per (window, page) must include every event";
  expect_updates_grow(out.rows);
  expect_dead_letters_are_the_malformed_lines(in, input, out.dead);
}

TEST_P(ClickstreamAllowedLateness, EventsBeyondItAreLateAndTheRestUpdateTheResult) {
  const int parallelism = GetParam();
  TempDir dir;
  const std::string input = dir.file("clicks.ndjson");
  // Events 3-6 s old against a 2 s bound and 2 s of allowed lateness: some
  // are within it (updates), some beyond (late output).
  Gen g;
  g.count = 100'000;
  g.seed = 41;
  g.out_of_order = 0.1;
  g.late = 0.05;
  g.late_delay = "3s";
  g.malformed = 0.005;
  ASSERT_TRUE(generate(g, input));
  Input in = read_and_classify(input);

  Job j;
  j.parallelism = parallelism;
  j.allowed_lateness_ms = 2'000;
  j.late_output = true;
  Outputs out;
  ASSERT_TRUE(run_clickstream(dir, input, j, out));

  expect_late_events_accounted_for(in, j, out, counts_of(out.rows, true));
  expect_dead_letters_are_the_malformed_lines(in, input, out.dead);
  expect_updates_grow(out.rows);
  if (parallelism == 1) {
    // With several readers the slowest one holds the watermark back, so
    // whether anything is late depends on scheduling; with one it cannot.
    EXPECT_GT(out.late.size(), 0u) << "some events are beyond the allowed lateness";
  }
}

INSTANTIATE_TEST_SUITE_P(Parallelism, ClickstreamAllowedLateness, ::testing::Values(1, 4),
                         [](const auto& info) { return "p" + std::to_string(info.param); });

}  // namespace
}  // namespace sluice::it
