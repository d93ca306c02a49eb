// What the sessions_funnel tests compare the job with, computed here from
// the input and written independently of the job: page views read with
// simdjson's DOM parser (not Sluice's JsonParser), a plain sessionization
// of each user's sorted events, the ordered funnel by scanning a session's
// sorted events, pattern matching by std::regex. Also readers of the job's
// outputs (session rows applied as a changelog, latest funnel update per
// minute and step, late events).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "tests/integration/support.h"

namespace sluice::sf_test {

struct View {
  std::string user_id;
  std::string page_url;
  std::string event_type;
  std::string device;
  int64_t ts = 0;
  auto tie() const { return std::tie(user_id, page_url, event_type, device, ts); }
  bool operator<(const View& o) const { return tie() < o.tie(); }
  bool operator==(const View& o) const { return tie() == o.tie(); }
};

/// The page views of an input file the job must take: JSON objects with
/// the five fields of the right types, a known event_type, a user and a
/// page path, ts > 0. `lines` counts every non-blank line.
std::vector<View> read_valid_views(const std::string& path, int64_t* lines = nullptr);

/// The job's settings the reference needs.
struct Settings {
  int64_t gap_ms = 30 * 60'000;
  std::vector<std::string> funnel{"/", "/product/*", "/cart", "/checkout"};
  size_t max_pages = 50;
};

/// A session row as the job writes it (the fields the tests compare).
struct SessionRow {
  std::string session_id;
  std::string user_id;
  int64_t start = 0, end = 0, duration = 0, events = 0, pages_more = 0;
  std::vector<std::string> pages, devices;
  int64_t furthest_step = -1;
  std::string furthest_step_name;
  bool converted = false;
  bool retracted = false;
  auto tie() const {
    return std::tie(session_id, user_id, start, end, duration, events, pages_more, pages, devices, furthest_step,
                    furthest_step_name, converted, retracted);
  }
  bool operator==(const SessionRow& o) const { return tie() == o.tie(); }
};
std::string to_string(const SessionRow& r);

using SessionTable = std::map<std::string, SessionRow>;  // by session_id
/// (minute, step) -> (entered, dropped)
using FunnelTable = std::map<std::pair<int64_t, int64_t>, std::pair<int64_t, int64_t>>;

/// Sessions of `views`: per user, sorted by time, a new session when an
/// event is more than the gap after the previous one.
SessionTable reference_sessions(const std::vector<View>& views, const Settings& s);
/// The funnel counts of the sessions of `views`.
FunnelTable reference_funnel(const std::vector<View>& views, const Settings& s);

/// Session rows of the job's output files, applied in order: a row
/// replaces the row of its id, a retraction removes it (a retraction of
/// an id not present is reported in `problems`).
SessionTable apply_session_rows(const std::vector<std::string>& files, std::vector<std::string>* problems,
                                size_t* retractions = nullptr);
/// Session rows given as JSON lines, in order.
SessionTable apply_session_lines(const std::vector<std::string>& lines, std::vector<std::string>* problems,
                                 size_t* retractions = nullptr);
SessionRow parse_session_row(const std::string& json);

/// Session rows of a changelog kept as files (the data lake): per
/// session_id the row with the most events is the latest version (a
/// session's updates only add events; its retraction carries the events it
/// had, and a merged session that keeps its id has more); a retracted latest
/// version means the session is gone. `.zst` files are decompressed.
SessionTable latest_session_versions(const std::vector<std::string>& files, std::vector<std::string>* problems);

/// The latest funnel update per (minute, step) in the files; rows of all
/// zeros are dropped (a minute whose counts were all withdrawn).
FunnelTable latest_funnel(const std::vector<std::string>& files);
/// The same from JSON lines.
FunnelTable latest_funnel_lines(const std::vector<std::string>& lines);

/// Late events of the job's late output, by what they were late for.
std::map<std::string, std::vector<View>> read_late(const std::string& path);

// published_files and files_with_prefix are shared by every job test.
using it::files_with_prefix;
using it::published_files;

/// `all` minus `remove` as multisets.
std::vector<View> minus(std::vector<View> all, std::vector<View> remove);

/// At most `limit` lines describing how the tables differ; empty if equal.
std::string diff_sessions(const SessionTable& expected, const SessionTable& actual, size_t limit = 8);
std::string diff_funnel(const FunnelTable& expected, const FunnelTable& actual, size_t limit = 8);

}  // namespace sluice::sf_test
