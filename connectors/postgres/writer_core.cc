#include "connectors/postgres/writer_core.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "connectors/postgres/metrics.h"
#include "engine/common/clock.h"

namespace sluice::postgres {

std::string_view pg_type_sql(PgType t) {
  switch (t) {
    case PgType::kBigint: return "bigint";
    case PgType::kInteger: return "integer";
    case PgType::kDouble: return "double precision";
    case PgType::kBoolean: return "boolean";
    case PgType::kText: return "text";
    case PgType::kTextArray: return "text[]";
  }
  return "?";
}

std::string_view pg_step_name(PgStep s) {
  switch (s) {
    case PgStep::kLockProgress: return "lock_progress";
    case PgStep::kWriteRows: return "write_rows";
    case PgStep::kUpdateProgress: return "update_progress";
    case PgStep::kCommit: return "commit";
  }
  return "?";
}

void append_copy_text(std::string& out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      default: out += c;
    }
  }
}

void append_copy_text_array(std::string& out, const std::vector<std::string>& items) {
  std::string literal = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) literal += ',';
    literal += '"';
    for (char c : items[i]) {
      if (c == '"' || c == '\\') literal += '\\';
      literal += c;
    }
    literal += '"';
  }
  literal += '}';
  append_copy_text(out, literal);
}

std::string text_problem(std::string_view s) {
  if (s.find('\0') != std::string_view::npos) return "a NUL byte, which PostgreSQL text cannot hold";
  if (!simdjson::validate_utf8(s.data(), s.size())) return "bytes that are not valid UTF-8";
  return "";
}

namespace {

std::string random_run_id() {
  std::random_device rd;
  std::mt19937_64 g((static_cast<uint64_t>(rd()) << 32) ^ rd() ^ static_cast<uint64_t>(monotonic_ns()));
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(g()));
  return buf;
}

std::string join_quoted(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + quote_ident(n);
  return out;
}

}  // namespace

PgWriterCore::PgWriterCore(PostgresSinkConfig config, std::vector<Column> columns, PostgresSinkHooks hooks)
    : config_(std::move(config)), columns_(std::move(columns)), hooks_(std::move(hooks)), run_(random_run_id()) {
  target_ = qualified(config_.schema, config_.table);
  progress_ = qualified(config_.schema, config_.progress_table);
  std::vector<std::string> names;
  for (const auto& c : columns_) names.push_back(c.name);
  const std::string cols = join_quoted(names);
  copy_target_sql_ = "COPY " + target_ + " (" + cols + ") FROM STDIN";
  if (config_.mode == WriteMode::kUpsert) {
    // Staging: one temporary table per connection, emptied at every commit.
    // With delete_when, each staged row also says whether it deletes.
    const bool deletes = !config_.delete_when.empty();
    stage_sql_ = "CREATE TEMP TABLE IF NOT EXISTS sluice_stage (";
    for (const auto& c : columns_) stage_sql_ += quote_ident(c.name) + " " + std::string(pg_type_sql(c.type)) + ", ";
    if (deletes) stage_sql_ += "sluice_delete boolean, ";
    stage_sql_ += "sluice_seq bigserial) ON COMMIT DELETE ROWS";
    copy_stage_sql_ = "COPY pg_temp.sluice_stage (" + cols + (deletes ? ", sluice_delete" : "") + ") FROM STDIN";
    const std::string keys = join_quoted(config_.key);
    // DISTINCT ON keeps the last row per key of the batch (ON CONFLICT may
    // not touch a row twice); ORDER BY key takes row locks in key order,
    // so concurrent writers rarely deadlock (and retry when they do).
    const std::string last = "(SELECT DISTINCT ON (" + keys + ") " + cols + (deletes ? ", sluice_delete" : "") +
                             " FROM pg_temp.sluice_stage ORDER BY " + keys + ", sluice_seq DESC) AS l";
    merge_sql_ = "INSERT INTO " + target_ + " (" + cols + ") SELECT " + cols + " FROM " + last +
                 (deletes ? " WHERE NOT l.sluice_delete" : "") + " ORDER BY " + keys + " ON CONFLICT (" + keys + ") DO ";
    std::string sets;
    for (const auto& n : names) {
      if (std::find(config_.key.begin(), config_.key.end(), n) != config_.key.end()) continue;
      sets += (sets.empty() ? "" : ", ") + quote_ident(n) + " = EXCLUDED." + quote_ident(n);
    }
    merge_sql_ += sets.empty() ? "NOTHING" : "UPDATE SET " + sets;
    if (deletes) {
      // The keys whose last row of the batch deletes.
      std::string match;
      for (const auto& k : config_.key) match += " AND t." + quote_ident(k) + " = l." + quote_ident(k);
      delete_sql_ = "DELETE FROM " + target_ + " AS t USING " + last + " WHERE l.sluice_delete" + match;
    }
  }
}

PgWriterCore::~PgWriterCore() = default;

Status PgWriterCore::step(PgStep s, PgPhase ph, int64_t checkpoint) {
  if (crashed_) return crash_status_;
  if (!hooks_.on_step) return Status::ok();
  Status st = hooks_.on_step(s, ph, checkpoint);
  if (!st.is_ok()) {
    crashed_ = true;
    crash_status_ = st;
    if (conn_) conn_->abandon();
  }
  return st;
}

Status PgWriterCore::initialize(const runtime::OperatorRestore& restore) {
  restore_ = restore;
  return Status::ok();
}

Status PgWriterCore::connect() {
  ConnectParams params = config_.connect;
  if (!password_.empty()) params["password"] = password_;
  SLUICE_ASSIGN_OR_RETURN(conn_, PgConnection::connect(params));
  // Session settings: a commit is durable before the checkpoint moves on
  // (a server configured with synchronous_commit=off could otherwise lose
  // an acknowledged batch in a crash); no NOTICE chatter; a lock held by a
  // stuck zombie of an earlier run is waited for at most 10 s (then retried);
  // and a writer idle inside its own transaction for 2 s — frozen (SIGSTOP,
  // a hung or cut-off process) between the statements of a commit — has it
  // ended by the server, so the progress row lock it holds does not hold up
  // the attempt that replaced it. Never idle that long when alive: a commit's
  // statements follow each other at once, and a live writer that is ended
  // this way retries the batch on a new connection.
  SLUICE_RETURN_IF_ERROR(conn_->exec(
      "SET synchronous_commit = on; SET client_min_messages = warning; SET lock_timeout = '10s'; "
      "SET idle_in_transaction_session_timeout = '2s'; SET work_mem = '64MB'"));
  if (!stage_sql_.empty()) SLUICE_RETURN_IF_ERROR(conn_->exec(stage_sql_));
  return Status::ok();
}

Status PgWriterCore::attempt_once(const std::string& what, const std::function<Status()>& attempt,
                                  bool& expired) {
  expired = false;
  if (crashed_) return crash_status_;
  Status st = (!conn_ || !conn_->ok()) ? connect() : Status::ok();
  if (st.is_ok()) st = attempt();
  if (crashed_) return crash_status_;
  if (st.is_ok()) {
    if (failures_ > 0) {
      spdlog::info("Postgres sink {}: {} succeeded after {} retries", config_.uri, what, failures_);
    }
    failures_ = 0;
    outage_start_ns_ = 0;
    backoff_ms_ = 100;
    return st;
  }
  // A failed statement leaves the transaction aborted, and a broken
  // connection is useless: start again on a fresh one.
  if (conn_) conn_->abandon();
  conn_.reset();
  if (st.code() != StatusCode::kUnavailable) return st.with_context("postgres sink " + config_.uri + ": " + what);
  const int64_t now = monotonic_ns();
  if (outage_start_ns_ == 0) outage_start_ns_ = now;
  if (now - outage_start_ns_ >= config_.retry_timeout.count() * 1'000'000) {
    expired = true;
    return Status::unavailable("postgres sink " + config_.uri + ": " + what + " still failing after " +
                               format_duration(config_.retry_timeout) + " of retries (retry_timeout): " +
                               st.message());
  }
  ++failures_;
  if (retries_metric_) retries_metric_->Increment();
  if (failures_ == 1 || failures_ % 10 == 0) {
    spdlog::warn("Postgres sink {}: {} failed (attempt {}), retrying in {} ms: {}", config_.uri, what, failures_,
                 backoff_ms_, st.message());
  }
  return st;
}

Status PgWriterCore::wait_ms(int64_t ms) {
  if (!ctx_) return Status::failed_precondition("postgres sink: waiting before open()");
  // shared: the callback may outlive this wait (a yield that gave up).
  auto done = std::make_shared<bool>(false);
  auto& pts = ctx_->processing_time();
  pts.schedule(pts.now_ms() + ms, [done](int64_t) { *done = true; });
  while (!*done) {
    if (!ctx_->mailbox().yield()) return Status::cancelled("postgres sink: the task is stopping");
  }
  return Status::ok();
}

Status PgWriterCore::with_retry(const std::string& what, const std::function<Status()>& attempt) {
  waiting_ = true;
  struct Reset {
    bool& flag;
    ~Reset() { flag = false; }
  } reset{waiting_};
  for (;;) {
    bool expired = false;
    Status st = attempt_once(what, attempt, expired);
    if (st.is_ok() || st.code() != StatusCode::kUnavailable || expired || crashed_) return st;
    SLUICE_RETURN_IF_ERROR(wait_ms(backoff_ms_));
    backoff_ms_ = std::min<int64_t>(backoff_ms_ * 2, 5000);
  }
}

void PgWriterCore::schedule_retry() {
  if (retry_scheduled_) return;
  retry_scheduled_ = true;
  const uint64_t generation = ++retry_generation_;
  auto& pts = ctx_->processing_time();
  pts.schedule(pts.now_ms() + backoff_ms_, [this, generation](int64_t) {
    if (generation != retry_generation_) return;  // superseded
    retry_scheduled_ = false;
    if (waiting_) return;  // a blocking wait is already retrying
    Status st = exactly_once_ ? commit_completed() : flush_batch();
    if (!st.is_ok()) ctx_->fail(st);
  });
  backoff_ms_ = std::min<int64_t>(backoff_ms_ * 2, 5000);
}

void PgWriterCore::set_suspended(bool suspended) {
  if (suspended == suspended_ || !ctx_) return;
  suspended_ = suspended;
  ctx_->mailbox().set_input_suspended(suspended);
  if (suspended) {
    spdlog::warn("Postgres sink {}: {} rows wait for the server; input suspended", config_.uri, pending_rows());
  }
}

Status PgWriterCore::setup_tables() {
  SLUICE_RETURN_IF_ERROR(conn_->exec("BEGIN"));
  // Subtasks open at the same time; CREATE TABLE IF NOT EXISTS races with
  // itself, so creation is serialized by an advisory lock.
  SLUICE_RETURN_IF_ERROR(
      conn_->query("SELECT pg_advisory_xact_lock(hashtext('sluice sink setup'))").status());
  SLUICE_ASSIGN_OR_RETURN(QueryResult have, conn_->query("SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL",
                                                         {progress_, target_}));
  if (have.rows.at(0)[0] != "t") {
    SLUICE_RETURN_IF_ERROR(conn_->exec("CREATE TABLE " + progress_ +
                                       " (sink_id text NOT NULL, writer integer NOT NULL, checkpoint bigint NOT NULL, "
                                       "run text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), "
                                       "PRIMARY KEY (sink_id, writer))"));
  }
  if (have.rows.at(0)[1] != "t" && config_.create_table) {
    std::string sql = "CREATE TABLE " + target_ + " (";
    for (const auto& c : columns_) sql += quote_ident(c.name) + " " + std::string(pg_type_sql(c.type)) + " NOT NULL, ";
    if (config_.mode == WriteMode::kUpsert) {
      sql += "PRIMARY KEY (" + join_quoted(config_.key) + "))";
    } else {
      sql.resize(sql.size() - 2);
      sql += ")";
    }
    SLUICE_RETURN_IF_ERROR(conn_->exec(sql));
    spdlog::info("Postgres sink {}: created table {}", config_.uri, target_);
  }
  return conn_->exec("COMMIT");
}

Status PgWriterCore::check_schema() {
  const std::string where = "table " + target_ + " on " + conn_->target();
  SLUICE_ASSIGN_OR_RETURN(
      QueryResult cols,
      conn_->query("SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
                   "a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '' "
                   "FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 "
                   "AND NOT a.attisdropped ORDER BY a.attnum",
                   {target_}));
  if (cols.rows.empty()) {
    return Status::failed_precondition(where + " does not exist; create it or add create_table=true to the sink URI");
  }
  std::map<std::string, std::pair<std::string, bool>> have;  // name -> (type, required)
  for (const auto& r : cols.rows) have[*r[0]] = {*r[1], *r[2] == "t" && *r[3] != "t"};
  std::vector<std::string> problems;
  std::string expected;
  for (const auto& c : columns_) {
    expected += (expected.empty() ? "" : ", ") + c.name + " " + std::string(pg_type_sql(c.type));
    auto it = have.find(c.name);
    if (it == have.end()) {
      problems.push_back("column " + quote_ident(c.name) + " is missing");
      continue;
    }
    const std::string& t = it->second.first;
    bool ok = t == pg_type_sql(c.type) || (c.type == PgType::kText && t == "character varying");
    if (!ok) {
      problems.push_back("column " + quote_ident(c.name) + " is " + t + ", the record's field needs " +
                         std::string(pg_type_sql(c.type)));
    }
    have.erase(it);
  }
  for (const auto& [name, info] : have) {
    if (info.second) problems.push_back("column " + quote_ident(name) + " is NOT NULL without a default, and the record has no such field");
  }
  if (config_.mode == WriteMode::kUpsert) {
    SLUICE_ASSIGN_OR_RETURN(
        QueryResult idx,
        conn_->query("SELECT string_agg(a.attname, ',' ORDER BY a.attname) FROM pg_index i "
                     "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                     "WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indpred IS NULL "
                     "AND i.indexprs IS NULL GROUP BY i.indexrelid",
                     {target_}));
    std::vector<std::string> k = config_.key;
    std::sort(k.begin(), k.end());
    std::string want;
    for (const auto& n : k) want += (want.empty() ? "" : ",") + n;
    bool found = false;
    for (const auto& r : idx.rows) found = found || (r[0] && *r[0] == want);
    if (!found) {
      problems.push_back("mode=upsert needs a primary key or unique index on exactly (" + join_quoted(config_.key) +
                         "), and there is none");
    }
  }
  if (!problems.empty()) {
    std::string msg = where + " does not fit the records (" + expected + "): ";
    for (size_t i = 0; i < problems.size(); ++i) msg += (i ? "; " : "") + problems[i];
    return Status::failed_precondition(msg);
  }
  return Status::ok();
}

Status PgWriterCore::open(runtime::OperatorContext& ctx) {
  ctx_ = &ctx;
  const auto& info = ctx.info();
  subtask_ = info.subtask;
  parallelism_ = info.parallelism;
  exactly_once_ = ctx.job_config().contains("checkpoint.dir");
  sink_id_ = config_.sink_id.empty() ? info.job_name + "/" + info.uid : config_.sink_id;
  current_.writer = subtask_;
  current_.run = run_;
  auto& m = postgres_metrics();
  std::map<std::string, std::string> labels{{"job", info.job_name}, {"table", config_.table}};
  rows_metric_ = &m.rows.Add(labels);
  retries_metric_ = &m.retries.Add(labels);
  auto with = [&](const char* k, std::string v) {
    auto l = labels;
    l[k] = std::move(v);
    return l;
  };
  committed_metric_ = &m.commits.Add(with("outcome", "committed"));
  skipped_metric_ = &m.commits.Add(with("outcome", "skipped"));
  pending_metric_ = &m.pending_rows.Add(with("subtask", std::to_string(subtask_)));

  if (!config_.password_file.empty()) {
    std::ifstream in(config_.password_file);
    if (!in) {
      return Status::failed_precondition("postgres sink " + config_.uri + ": cannot read password_file '" +
                                         config_.password_file + "'");
    }
    std::getline(in, password_);
    while (!password_.empty() && (password_.back() == '\r' || password_.back() == ' ')) password_.pop_back();
  }
  if (!exactly_once_) {
    spdlog::warn("Postgres sink {}: the job has no checkpointing, so rows are committed every {} rows and at the "
                 "end, at-least-once (a restart may repeat them); set --checkpoint-dir for exactly-once",
                 config_.uri, config_.batch_rows);
  }
  SLUICE_RETURN_IF_ERROR(with_retry("creating tables", [&] { return setup_tables(); }));
  SLUICE_RETURN_IF_ERROR(with_retry("checking the table", [&] { return check_schema(); }));

  if (!restore_.restored) return Status::ok();
  // Batches of old subtask j are committed by new subtask j % parallelism,
  // each under j's progress row (rescaling works either way).
  std::vector<PgBatch> mine;
  for (size_t j = 0; j < restore_.states.size(); ++j) {
    if (static_cast<int>(j % parallelism_) != subtask_ || restore_.states[j].empty()) continue;
    std::vector<PgBatch> batches;
    SLUICE_RETURN_IF_ERROR(deserialize(restore_.states[j], batches).with_context("postgres sink state"));
    mine.insert(mine.end(), std::make_move_iterator(batches.begin()), std::make_move_iterator(batches.end()));
  }
  std::stable_sort(mine.begin(), mine.end(), [](const PgBatch& a, const PgBatch& b) {
    return a.writer != b.writer ? a.writer < b.writer : a.checkpoint < b.checkpoint;
  });
  for (const auto& b : mine) {
    SLUICE_RETURN_IF_ERROR(with_retry("recovering checkpoint " + std::to_string(b.checkpoint),
                                      [&] { return commit_batch(b); }));
  }
  restore_ = {};
  return Status::ok();
}

Status PgWriterCore::write_rows(std::string_view data) {
  if (config_.mode == WriteMode::kAppend) return conn_->copy_in(copy_target_sql_, data);
  SLUICE_RETURN_IF_ERROR(conn_->copy_in(copy_stage_sql_, data));
  if (!delete_sql_.empty()) SLUICE_RETURN_IF_ERROR(conn_->exec(delete_sql_));
  return conn_->exec(merge_sql_);
}

Status PgWriterCore::commit_batch(const PgBatch& b) {
  const int64_t cp = b.checkpoint;
  const std::string writer = std::to_string(b.writer);
  SLUICE_RETURN_IF_ERROR(step(PgStep::kLockProgress, PgPhase::kBefore, cp));
  SLUICE_RETURN_IF_ERROR(conn_->exec("BEGIN"));
  SLUICE_RETURN_IF_ERROR(conn_->query("INSERT INTO " + progress_ +
                                          " (sink_id, writer, checkpoint, run) VALUES ($1, $2, 0, '') "
                                          "ON CONFLICT DO NOTHING",
                                      {sink_id_, writer})
                             .status());
  // The row lock makes the check and the write one atomic step even if a
  // zombie of an earlier attempt commits the same batch concurrently.
  SLUICE_ASSIGN_OR_RETURN(QueryResult marker,
                          conn_->query("SELECT checkpoint, run FROM " + progress_ +
                                           " WHERE sink_id = $1 AND writer = $2 FOR UPDATE",
                                       {sink_id_, writer}));
  SLUICE_RETURN_IF_ERROR(step(PgStep::kLockProgress, PgPhase::kAfter, cp));
  const auto& row = marker.rows.at(0);
  if (*row[1] == b.run && std::stoll(*row[0]) >= cp) {
    SLUICE_RETURN_IF_ERROR(conn_->exec("ROLLBACK"));
    skipped_metric_->Increment();
    spdlog::info("Postgres sink {}: checkpoint {} of writer {} was committed before; skipped", config_.uri, cp,
                 b.writer);
    return Status::ok();
  }
  SLUICE_RETURN_IF_ERROR(step(PgStep::kWriteRows, PgPhase::kBefore, cp));
  SLUICE_RETURN_IF_ERROR(write_rows(b.data));
  SLUICE_RETURN_IF_ERROR(step(PgStep::kWriteRows, PgPhase::kAfter, cp));
  SLUICE_RETURN_IF_ERROR(step(PgStep::kUpdateProgress, PgPhase::kBefore, cp));
  SLUICE_RETURN_IF_ERROR(conn_->query("UPDATE " + progress_ +
                                          " SET checkpoint = $3, run = $4, updated_at = now() "
                                          "WHERE sink_id = $1 AND writer = $2",
                                      {sink_id_, writer, std::to_string(cp), b.run})
                             .status());
  SLUICE_RETURN_IF_ERROR(step(PgStep::kUpdateProgress, PgPhase::kAfter, cp));
  SLUICE_RETURN_IF_ERROR(step(PgStep::kCommit, PgPhase::kBefore, cp));
  SLUICE_RETURN_IF_ERROR(conn_->exec("COMMIT"));
  rows_metric_->Increment(static_cast<double>(b.rows));
  committed_metric_->Increment();
  return step(PgStep::kCommit, PgPhase::kAfter, cp);
}

Status PgWriterCore::append_row(std::string_view row) {
  if (crashed_) return crash_status_;
  current_.data.append(row);
  ++current_.rows;
  if (!exactly_once_ && current_.rows >= config_.batch_rows && !retry_scheduled_) return flush_batch();
  if (exactly_once_ && retry_scheduled_ && static_cast<int64_t>(pending_rows()) > config_.max_pending_rows) {
    set_suspended(true);
  }
  return Status::ok();
}

Status PgWriterCore::commit_current() {
  SLUICE_RETURN_IF_ERROR(conn_->exec("BEGIN"));
  SLUICE_RETURN_IF_ERROR(write_rows(current_.data));
  return conn_->exec("COMMIT");
}

Status PgWriterCore::flush_batch() {
  if (current_.rows == 0) {
    set_suspended(false);
    return Status::ok();
  }
  bool expired = false;
  Status st = attempt_once("writing " + std::to_string(current_.rows) + " rows", [&] { return commit_current(); },
                           expired);
  if (st.code() == StatusCode::kUnavailable && !expired && !crashed_) {
    // At-least-once holds one batch: wait for the server with the input suspended.
    set_suspended(true);
    schedule_retry();
    return Status::ok();
  }
  SLUICE_RETURN_IF_ERROR(st);
  rows_metric_->Increment(static_cast<double>(current_.rows));
  committed_metric_->Increment();
  current_.data.clear();
  current_.rows = 0;
  set_suspended(false);
  return Status::ok();
}

Status PgWriterCore::flush() {
  input_ended_ = true;
  if (exactly_once_) return Status::ok();
  return commit_held();
}

Status PgWriterCore::commit_held() {
  if (current_.rows == 0) return Status::ok();
  if (crashed_) return crash_status_;
  SLUICE_RETURN_IF_ERROR(with_retry("writing " + std::to_string(current_.rows) + " rows",
                                    [&] { return commit_current(); }));
  rows_metric_->Increment(static_cast<double>(current_.rows));
  committed_metric_->Increment();
  current_.data.clear();
  current_.rows = 0;
  set_suspended(false);
  return Status::ok();
}

uint64_t PgWriterCore::pending_rows() const {
  uint64_t n = current_.rows;
  for (const auto& b : pending_) n += b.rows;
  return n;
}

Result<std::string> PgWriterCore::snapshot(CheckpointId id) {
  if (crashed_) return crash_status_;
  if (!exactly_once_) {
    SLUICE_RETURN_IF_ERROR(commit_held());
    return std::string();
  }
  if (current_.rows > 0) {
    current_.checkpoint = id.value();
    pending_.push_back(std::move(current_));
    current_ = PgBatch{};
    current_.writer = subtask_;
    current_.run = run_;
  }
  if (pending_metric_) pending_metric_->Set(static_cast<double>(pending_rows()));
  return serialize(pending_);
}

Status PgWriterCore::checkpoint_complete(CheckpointId id) {
  if (crashed_) return crash_status_;
  completed_ = std::max(completed_, id.value());
  if (input_ended_) {
    // The final checkpoint: the task ends once this returns, so wait here.
    while (!pending_.empty() && pending_.front().checkpoint <= completed_) {
      const PgBatch& b = pending_.front();
      SLUICE_RETURN_IF_ERROR(with_retry("committing checkpoint " + std::to_string(b.checkpoint) + " (" +
                                            std::to_string(b.rows) + " rows)",
                                        [&] { return commit_batch(b); }));
      pending_.erase(pending_.begin());
    }
    if (pending_metric_) pending_metric_->Set(static_cast<double>(pending_rows()));
    return Status::ok();
  }
  if (retry_scheduled_) return Status::ok();  // the retry commits this checkpoint too
  return commit_completed();
}

Status PgWriterCore::commit_completed() {
  while (!pending_.empty() && pending_.front().checkpoint <= completed_) {
    const PgBatch& b = pending_.front();
    bool expired = false;
    Status st = attempt_once("committing checkpoint " + std::to_string(b.checkpoint) + " (" +
                                 std::to_string(b.rows) + " rows)",
                             [&] { return commit_batch(b); }, expired);
    if (st.code() == StatusCode::kUnavailable && !expired && !crashed_) {
      // Stays pending (and in every checkpoint) until the retry commits it.
      schedule_retry();
      if (static_cast<int64_t>(pending_rows()) > config_.max_pending_rows) set_suspended(true);
      break;
    }
    SLUICE_RETURN_IF_ERROR(st);
    pending_.erase(pending_.begin());
  }
  if (!retry_scheduled_) set_suspended(false);
  if (pending_metric_) pending_metric_->Set(static_cast<double>(pending_rows()));
  return Status::ok();
}

Status PgWriterCore::close() {
  // Rows after the last barrier are not covered by a checkpoint: a restore
  // regenerates them.
  conn_.reset();
  return Status::ok();
}

}  // namespace sluice::postgres
