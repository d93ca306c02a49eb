// What the integration tests share: where the built binaries are, scratch
// directories, an independent reading of the NDJSON that goes in and comes
// out of a job (simdjson's DOM parser, not Sluice's JsonParser), and the
// reference computations the job's output is compared with.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "tests/integration/process.h"

namespace sluice::it {

// ---- the build under test ----------------------------------------------

/// $SLUICE_BUILD_DIR (set by ctest for every sluice_test); aborts the test
/// binary with a message when it is missing.
const std::string& build_dir();
std::string sluice_binary();        // <build>/sluice
std::string clickstream_library();  // <build>/jobs/clickstream/libclickstream.so
std::string sessions_library();     // <build>/tests/integration/jobs/libit_sessions_job.so
std::string cep_library();          // <build>/tests/integration/jobs/libit_cep_job.so
std::string rules_library();        // <build>/tests/integration/jobs/libit_rules_job.so

/// Runs `sluice <args...>`.
CommandResult run_sluice(const std::vector<std::string>& args);

// ---- files ---------------------------------------------------------------

/// A fresh directory under $TMPDIR (or /tmp), removed with everything in it
/// when the object goes, unless $SLUICE_IT_KEEP is set (for debugging).
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  /// <dir>/<name>
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  /// file://<dir>/<name>
  std::string uri(const std::string& name) const { return "file://" + file(name); }

 private:
  std::string path_;
};

/// The lines of a file without their '\n' (a final line without one is
/// kept). A missing file reads as no lines and `exists` (if given) = false.
std::vector<std::string> read_lines(const std::string& path, bool* exists = nullptr);
void write_file(const std::string& path, std::string_view content);
void write_lines(const std::string& path, const std::vector<std::string>& lines);
/// Every file in `dir` whose name starts with `prefix` (sorted): the
/// outputs of a sink with several writers (out.ndjson, out-1.ndjson, ...).
std::vector<std::string> files_with_prefix(const std::string& dir, const std::string& prefix);
/// Every published file under `dir` (a partitioned sink's tree; hidden
/// in-progress files skipped), sorted.
std::vector<std::string> published_files(const std::string& dir);

/// Input of it_cep_job: `count` login/purchase events of `users` users
/// (devices 0-5), 0 to `max_step_ms` apart in event time, up to 2 s out of
/// order (the job's bound), seeded.
void write_cep_activity(const std::string& path, int count, uint32_t seed, int users = 300, int max_step_ms = 20);

// ---- records, read independently ----------------------------------------

/// A click event as the input format defines it: an object with string
/// user_id, page_url, event_type and an integer ts (unknown fields ignored).
struct Click {
  std::string user_id;
  std::string page_url;
  std::string event_type;
  int64_t ts = 0;
  auto tie() const { return std::tie(user_id, page_url, event_type, ts); }
  bool operator==(const Click& o) const { return tie() == o.tie(); }
  bool operator<(const Click& o) const { return tie() < o.tie(); }
};
std::string to_string(const Click& c);

/// nullopt when the line is not a click event (malformed for the job).
std::optional<Click> parse_click(std::string_view line);

/// One input line as the test sees it.
struct InputLine {
  int64_t line_no = 0;  // 1-based
  std::string text;
  std::optional<Click> click;  // nullopt: malformed
};
/// Every line of the file (blank lines too, so numbering is the file's).
std::vector<InputLine> read_input(const std::string& path);
bool is_blank(std::string_view line);

/// {"window_start":..,"window_end":..,"page_url":..,"count":..}
struct PageCountRow {
  int64_t window_start = 0;
  int64_t window_end = 0;
  std::string page_url;
  int64_t count = 0;
};
/// {"reason":..,"origin":..,"line":..,"payload":..} (other fields ignored)
struct DeadLetterRow {
  std::string reason;
  std::string origin;
  int64_t line = -1;
  std::string payload;
};
/// {"user_id":..,"session_start":..,"session_end":..,"count":..}
struct SessionRow {
  std::string user_id;
  int64_t session_start = 0;
  int64_t session_end = 0;
  int64_t count = 0;
  auto tie() const { return std::tie(user_id, session_start, session_end, count); }
  bool operator==(const SessionRow& o) const { return tie() == o.tie(); }
  bool operator<(const SessionRow& o) const { return tie() < o.tie(); }
};
std::string to_string(const SessionRow& r);

/// Parse every line of an output file; a line that does not parse is a
/// test failure (reported with the file name and line).
std::vector<PageCountRow> read_page_counts(const std::string& path);
std::vector<DeadLetterRow> read_dead_letters(const std::string& path);
std::vector<Click> read_clicks(const std::string& path);
std::vector<SessionRow> read_sessions(const std::string& path);

/// {"user":..,"rule":..,"total":..}: an alert of it_rules_job.
struct AlertRow {
  std::string user;
  std::string rule;
  int64_t total = 0;
};
std::vector<AlertRow> read_alerts(const std::string& path);

/// Writes the inputs of it_rules_job (seeded): `spends` spends of `users`
/// users over 5 categories, and `rules` rules with thresholds around the
/// typical totals. Returns the (user, rule) pairs whose final total in the
/// rule's category reaches its threshold: the alerts the job must emit,
/// once each, whatever the interleaving of spends and rules.
std::set<std::pair<std::string, std::string>> write_rules_input(const std::string& spends_path,
                                                                const std::string& rules_path,
                                                                int spends, int users, int rules,
                                                                uint64_t seed);

// ---- references -----------------------------------------------------------

/// Start of the tumbling window of `size_ms` (aligned to the epoch) holding ts.
int64_t window_start_of(int64_t ts, int64_t size_ms);

using WindowPage = std::pair<int64_t, std::string>;  // (window_start, page_url)
using Counts = std::map<WindowPage, int64_t>;

/// Events per (tumbling window, page): what clickstream must produce.
Counts reference_counts(const std::vector<Click>& events, int64_t window_ms);

/// Rows as a map; a second row for the same (window, page) is a test
/// failure unless `allow_updates` (then the last row wins, as a consumer of
/// an updating result would read it).
Counts counts_of(const std::vector<PageCountRow>& rows, bool allow_updates = false);

/// Human-readable differences (at most `limit`), empty when equal.
std::string diff_counts(const Counts& expected, const Counts& actual, size_t limit = 10);

/// Sessions per user: each event opens [ts, ts + gap); sessions that
/// overlap or touch merge (Flink's semantics). Sorted.
std::vector<SessionRow> reference_sessions(
    const std::vector<std::pair<std::string, int64_t>>& events, int64_t gap_ms);

/// `a` minus `b` as multisets (each element of `b` removes one equal element
/// of `a`); elements of `b` that `a` lacks are returned in `missing`.
std::vector<Click> multiset_minus(std::vector<Click> a, std::vector<Click> b,
                                  std::vector<Click>* missing);

}  // namespace sluice::it
