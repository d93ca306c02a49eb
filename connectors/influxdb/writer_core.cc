#include "connectors/influxdb/writer_core.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>

#include "connectors/influxdb/line_protocol.h"
#include "connectors/influxdb/metrics.h"
#include "engine/common/uri.h"

namespace sluice::influxdb {

namespace {

constexpr int64_t kFirstBackoffMs = 100;
constexpr int64_t kMaxBackoffMs = 5000;
constexpr uint8_t kStateFormat = 1;

/// The secret from `file` (its first line) or else the environment
/// variable `env`; empty if neither has one.
Result<std::string> read_secret(const std::string& file, const std::string& env, const std::string& what) {
  std::string s;
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) return Status::failed_precondition("cannot read " + what + " file '" + file + "'");
    std::getline(in, s);
  } else if (const char* v = std::getenv(env.c_str())) {
    s = v;
  }
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ' || s.back() == '\n')) s.pop_back();
  return s;
}

Status check_chunk(const InfluxChunk& c) {
  uint32_t prev = 0;
  for (uint32_t e : c.ends) {
    if (e <= prev || e > c.lines.size() || c.lines[e - 1] != '\n') {
      return Status::corruption("influxdb sink state: a batch's point offsets do not match its lines");
    }
    prev = e;
  }
  if (prev != c.lines.size()) return Status::corruption("influxdb sink state: a batch has text after its last point");
  return Status::ok();
}

}  // namespace

InfluxWriterCore::InfluxWriterCore(InfluxSinkConfig config)
    : config_(std::move(config)), alive_(std::make_shared<bool>(true)) {
  write_url_ = config_.write_url();
  step_ = config_.create_database ? Step::kCreateDatabase : Step::kProbe;
}

InfluxWriterCore::~InfluxWriterCore() {
  *alive_ = false;
  client_.reset();
}

Status InfluxWriterCore::initialize(const runtime::OperatorRestore& restore) {
  restore_ = restore;
  return Status::ok();
}

Status InfluxWriterCore::open(runtime::OperatorContext& ctx) {
  ctx_ = &ctx;
  const auto& info = ctx.info();
  exactly_once_ = ctx.job_config().contains("checkpoint.dir");
  const std::string target = config_.api == ApiVersion::kV1 ? config_.database : config_.bucket;
  auto& m = influx_metrics();
  const std::map<std::string, std::string> labels{{"job", info.job_name}, {"target", target}};
  points_metric_ = &m.points.Add(labels);
  refused_metric_ = &m.refused.Add(labels);
  retries_metric_ = &m.retries.Add(labels);
  bytes_metric_ = &m.bytes.Add(labels);
  auto with_subtask = labels;
  with_subtask["subtask"] = std::to_string(info.subtask);
  pending_metric_ = &m.pending.Add(with_subtask);

  const std::string where = "influxdb sink " + config_.uri;
  if (config_.api == ApiVersion::kV1 && !config_.user.empty()) {
    auto pw_or = read_secret(config_.password_file, config_.password_env, "password");
    if (!pw_or.is_ok()) return pw_or.status().with_context(where);
    const std::string& pw = *pw_or;
    if (pw.empty()) {
      return Status::failed_precondition(
          where + ": user " + config_.user + " needs a password: set " + config_.password_env +
          " in the environment of the processes that run the sink, or give password_file=PATH");
    }
    authorization_ = http_client::basic_authorization(config_.user, pw);
  } else if (config_.api == ApiVersion::kV2) {
    auto token_or = read_secret(config_.token_file, config_.token_env, "token");
    if (!token_or.is_ok()) return token_or.status().with_context(where);
    const std::string& token = *token_or;
    if (token.empty()) {
      return Status::failed_precondition(where + ": the 2.x API needs a token: set " + config_.token_env +
                                         " in the environment of the processes that run the sink, or give "
                                         "token_file=PATH");
    }
    authorization_ = "Token " + token;
  }

  http_client::HttpClientOptions o;
  o.name = "influxdb";
  o.max_pending = 16;  // one write at a time, plus the client's own margin
  o.default_timeout = config_.request_timeout;
  o.connect_timeout = std::min<Duration>(config_.request_timeout, std::chrono::seconds(5));
  o.max_response_bytes = 1 << 20;
  o.ca_file = config_.ca_file;
  SLUICE_ASSIGN_OR_RETURN(client_, http_client::HttpClient::start(o));

  if (restore_.restored) {
    // Old subtask j's batches go to new subtask j % parallelism (rescaling).
    // They belong to the completed checkpoint being restored: written now.
    for (size_t j = 0; j < restore_.states.size(); ++j) {
      if (static_cast<int>(j % info.parallelism) != info.subtask || restore_.states[j].empty()) continue;
      ByteReader r(restore_.states[j]);
      uint8_t format = 0;
      uint64_t n = 0;
      if (!r.get_u8(format) || format != kStateFormat || !r.get_varint(n)) {
        return Status::corruption(where + ": unreadable checkpoint state of subtask " + std::to_string(j));
      }
      for (uint64_t i = 0; i < n; ++i) {
        InfluxChunk c;
        if (!Serde<InfluxChunk>::read(r, c)) {
          return Status::corruption(where + ": truncated checkpoint state of subtask " + std::to_string(j));
        }
        SLUICE_RETURN_IF_ERROR(check_chunk(c));
        c.checkpoint = InfluxChunk::kCommitted;
        if (!c.ends.empty()) chunks_.push_back(std::move(c));
      }
    }
    restore_ = {};
    if (!chunks_.empty()) {
      spdlog::info("{}: subtask {} rewrites {} restored points", where, info.subtask, pending_points());
    }
  }
  if (!exactly_once_) {
    spdlog::warn("{}: the job has no checkpointing, so points are written every {} points or {} and at the end, "
                 "at-least-once; set --checkpoint-dir for exactly-once in effect",
                 where, config_.batch_points, format_duration(config_.flush_interval));
  }
  pump();
  update_backpressure();
  return Status::ok();
}

bool InfluxWriterCore::publishable(const InfluxChunk& c) const {
  return c.checkpoint == InfluxChunk::kCommitted || (c.checkpoint > 0 && c.checkpoint <= completed_);
}

uint64_t InfluxWriterCore::pending_points() const {
  uint64_t n = 0;
  for (const auto& c : chunks_) n += c.ends.size();
  return n;
}

InfluxChunk& InfluxWriterCore::open_chunk() {
  if (!chunks_.empty() && chunks_.back().checkpoint == InfluxChunk::kOpen) {
    InfluxChunk& c = chunks_.back();
    if (static_cast<int64_t>(c.ends.size()) < config_.batch_points &&
        static_cast<int64_t>(c.lines.size()) < config_.batch_bytes) {
      return c;
    }
    // Full. With checkpointing it waits for its barrier like the rest;
    // without, it is written now.
    if (!exactly_once_) c.checkpoint = InfluxChunk::kCommitted;
  }
  chunks_.emplace_back();
  if (!exactly_once_) {
    const uint64_t seq = ++open_seq_;
    auto alive = alive_;
    ctx_->processing_time().schedule(ctx_->processing_time().now_ms() + config_.flush_interval.count(),
                                     [this, alive, seq](int64_t) {
                                       if (*alive) seal_for_time(seq);
                                     });
    if (chunks_.size() > 1) {
      pump();
      update_backpressure();
    }
  }
  return chunks_.back();
}

void InfluxWriterCore::seal_for_time(uint64_t seq) {
  if (seq != open_seq_ || chunks_.empty() || chunks_.back().checkpoint != InfluxChunk::kOpen) return;
  chunks_.back().checkpoint = InfluxChunk::kCommitted;
  pump();
  update_backpressure();
}

Status InfluxWriterCore::append(std::string_view line) {
  if (!failed_.is_ok()) return failed_;
  InfluxChunk& c = open_chunk();
  c.lines.append(line);
  c.ends.push_back(static_cast<uint32_t>(c.lines.size()));
  return Status::ok();
}

void InfluxWriterCore::reject(const std::string& reason, std::string payload) {
  DeadLetter dl;
  dl.reason = "influxdb sink: " + reason;
  dl.origin = "influxdb sink " + config_.uri;
  dl.payload = std::move(payload);
  ctx_->dead_letter(std::move(dl));
}

std::string_view InfluxWriterCore::range_text(const InfluxChunk& c, const Range& r) const {
  uint32_t begin = r.first == 0 ? 0 : c.ends[r.first - 1];
  return std::string_view(c.lines).substr(begin, c.ends[r.second - 1] - begin);
}

void InfluxWriterCore::pump() {
  if (!ctx_ || !client_ || !failed_.is_ok() || in_flight_ || retry_scheduled_) return;
  if (step_ != Step::kWrites) {
    send_control();
    return;
  }
  while (!chunks_.empty() && chunks_.front().ends.empty() && publishable(chunks_.front())) chunks_.pop_front();
  if (chunks_.empty() || !publishable(chunks_.front())) return;
  send_write();
}

void InfluxWriterCore::send_control() {
  http_client::Request req;
  req.method = http_client::Method::kPost;
  if (!authorization_.empty()) req.headers.emplace_back("Authorization", authorization_);
  if (step_ == Step::kCreateDatabase) {
    req.url = config_.base_url() + "/query";
    req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    req.body = "q=" + percent_encode("CREATE DATABASE " + influxql_identifier(config_.database));
  } else {
    // An empty write: checks address, credentials and database/bucket
    // before the first checkpoint has anything to write.
    req.url = write_url_;
    req.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
  }
  submit(std::move(req), step_, 0);
}

void InfluxWriterCore::send_write() {
  const InfluxChunk& c = chunks_.front();
  if (todo_.empty()) todo_.emplace_back(0, static_cast<uint32_t>(c.ends.size()));
  const Range r = todo_.front();
  std::string_view text = range_text(c, r);
  http_client::Request req;
  req.method = http_client::Method::kPost;
  req.url = write_url_;
  req.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
  if (!authorization_.empty()) req.headers.emplace_back("Authorization", authorization_);
  if (config_.gzip) {
    if (auto z = http_client::gzip(text, 1); z.is_ok()) {
      req.body = std::move(*z);
      req.headers.emplace_back("Content-Encoding", "gzip");
    }
  }
  if (req.body.empty()) req.body.assign(text);
  submit(std::move(req), Step::kWrites, r.second - r.first);
}

void InfluxWriterCore::submit(http_client::Request request, Step step, uint32_t points) {
  in_flight_ = true;
  stats_.bytes_sent += request.body.size();
  bytes_metric_->Increment(static_cast<double>(request.body.size()));
  auto alive = alive_;
  runtime::MailboxExecutor* mailbox = &ctx_->mailbox();
  // The callback runs on the client's thread and only posts: everything
  // else happens on the task thread. The client is stopped (and calls
  // back) in close(), while the mailbox still exists.
  Status st = client_->submit(std::move(request), [this, alive, mailbox, step, points](
                                                      Result<http_client::Response> r) {
    mailbox->execute(
        [this, alive, step, points, r = std::move(r)]() mutable {
          if (*alive) on_answer(step, points, std::move(r));
        },
        "influxdb sink answer");
  });
  if (!st.is_ok()) {
    in_flight_ = false;
    retry_later(st.message(), -1);
  }
}

void InfluxWriterCore::on_answer(Step step, uint32_t points, Result<http_client::Response> result) {
  in_flight_ = false;
  if (!failed_.is_ok()) return;
  const std::string where = "influxdb sink " + config_.uri;
  if (!result.is_ok()) {
    if (result.status().code() == StatusCode::kCancelled) return;  // the client is stopping
    if (result.status().code() == StatusCode::kInvalidArgument) {
      fail(result.status().with_context(where));
      return;
    }
    retry_later(result.status().message(), -1);
    return;
  }
  ++stats_.requests;
  const http_client::Response& resp = *result;
  const long code = resp.status;
  const std::string msg = server_message(resp.body);
  const std::string answer = http_client::describe_status(code) + (msg.empty() ? "" : ": " + msg);

  if (resp.ok()) {
    if (step == Step::kCreateDatabase) {
      if (std::string e = statement_error(resp.body); !e.empty()) {
        fail(Status::failed_precondition(where + ": CREATE DATABASE failed: " + e));
        return;
      }
      step_ = Step::kProbe;
    } else if (step == Step::kProbe) {
      step_ = Step::kWrites;
    } else {
      stats_.points_accepted += points;
      points_metric_->Increment(points);
      advance();
    }
    if (failures_ > 0) spdlog::info("{}: writing again after {} failed attempts", where, failures_);
    failures_ = 0;
    first_failure_ms_ = -1;
    backoff_ms_ = kFirstBackoffMs;
    pump();
    return;
  }
  if (code == 401 || code == 403) {
    fail(Status::permission_denied(where + ": the server refused the credentials (" + answer + "); check " +
                                   (config_.api == ApiVersion::kV1 ? "the user and its password (password_file= or " +
                                                                         config_.password_env + ")"
                                                                   : "the token (token_file= or " +
                                                                         config_.token_env + ")") +
                                   " and its rights on " + config_.target()));
    return;
  }
  if (code == 404) {
    fail(Status::not_found(where + ": " + config_.target() + " not found (" + answer + "); create it" +
                           (config_.api == ApiVersion::kV1 ? ", or add create_database=true to the URI" : "")));
    return;
  }
  if (code == 429 || (code >= 500 && msg.find("not found") == std::string::npos)) {
    retry_later(answer, resp.retry_after_s);
    return;
  }
  const bool point_level = code == 400 || code == 413 || code == 422;
  if (step != Step::kWrites) {
    if (step == Step::kProbe && config_.api == ApiVersion::kV2 && code == 400) {
      step_ = Step::kWrites;  // 2.x refuses an empty body after checking the rest
      pump();
      return;
    }
    fail(Status::failed_precondition(where + ": " + answer));
    return;
  }
  if (!point_level) {
    fail(Status::failed_precondition(where + ": unexpected answer to a write: " + answer));
    return;
  }
  // Some point of the request is refused (the server may have written the
  // others: rewriting them is harmless). One point left: it goes to the
  // dead-letter output with the server's reason. Otherwise both halves are
  // tried again, in order, so the rest of the batch is not lost.
  failures_ = 0;
  first_failure_ms_ = -1;
  backoff_ms_ = kFirstBackoffMs;
  const Range r = todo_.front();
  if (points == 1 || (code == 400 && all_points_dropped(msg, points))) {
    refuse(r, "InfluxDB refused the point (" + answer + ")");
    advance();
  } else {
    const uint32_t mid = r.first + (r.second - r.first) / 2;
    todo_.pop_front();
    todo_.emplace_front(mid, r.second);
    todo_.emplace_front(r.first, mid);
  }
  pump();
}

void InfluxWriterCore::advance() {
  todo_.pop_front();
  if (todo_.empty()) chunks_.pop_front();
  update_backpressure();
}

void InfluxWriterCore::refuse(const Range& r, const std::string& why) {
  const InfluxChunk& c = chunks_.front();
  for (uint32_t i = r.first; i < r.second; ++i) {
    std::string_view line = range_text(c, {i, i + 1});
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    reject(why, std::string(line));
  }
  stats_.points_refused += r.second - r.first;
  refused_metric_->Increment(r.second - r.first);
}

void InfluxWriterCore::retry_later(const std::string& why, int64_t retry_after_s) {
  ++failures_;
  ++stats_.retries;
  retries_metric_->Increment();
  const int64_t now = ctx_->processing_time().now_ms();
  if (first_failure_ms_ < 0) first_failure_ms_ = now;
  const std::string where = "influxdb sink " + config_.uri;
  if (now - first_failure_ms_ >= config_.retry_timeout.count()) {
    fail(Status::unavailable(where + ": writing to " + config_.target() + " still fails after " +
                             format_duration(config_.retry_timeout) + " of retries (retry_timeout): " + why));
    return;
  }
  int64_t delay = backoff_ms_;
  backoff_ms_ = std::min(backoff_ms_ * 2, kMaxBackoffMs);
  if (retry_after_s > 0) delay = std::max(delay, std::min<int64_t>(retry_after_s * 1000, 60'000));
  if (failures_ == 1 || failures_ % 10 == 0) {
    spdlog::warn("{}: request failed (attempt {}), retrying in {} ms: {}", where, failures_, delay, why);
  }
  retry_scheduled_ = true;
  auto alive = alive_;
  ctx_->processing_time().schedule(now + delay, [this, alive](int64_t) {
    if (!*alive) return;
    retry_scheduled_ = false;
    pump();
  });
}

void InfluxWriterCore::fail(Status st) {
  if (!failed_.is_ok()) return;
  failed_ = st;
  spdlog::error("{}", st.message());
  if (suspended_) {
    suspended_ = false;
    ctx_->mailbox().set_input_suspended(false);
  }
  ctx_->fail(std::move(st));
}

void InfluxWriterCore::update_backpressure() {
  uint64_t bytes = 0;
  for (const auto& c : chunks_)
    if (publishable(c)) bytes += c.lines.size();
  if (pending_metric_) pending_metric_->Set(static_cast<double>(pending_points()));
  if (!failed_.is_ok()) return;
  const uint64_t limit = static_cast<uint64_t>(config_.max_pending_bytes);
  if (!suspended_ && bytes > limit) {
    suspended_ = true;
    ctx_->mailbox().set_input_suspended(true);
  } else if (suspended_ && bytes <= limit / 2) {
    suspended_ = false;
    ctx_->mailbox().set_input_suspended(false);
  }
}

Status InfluxWriterCore::drain(const char* what) {
  auto waiting = [&] {
    for (const auto& c : chunks_)
      if (publishable(c) && !c.ends.empty()) return true;
    return false;
  };
  while (failed_.is_ok() && waiting()) {
    pump();
    if (!ctx_->mailbox().yield()) {
      return Status::cancelled("influxdb sink " + config_.uri + ": the task stopped while " + what + " waited for " +
                               std::to_string(pending_points()) + " points to be written");
    }
  }
  return failed_;
}

Status InfluxWriterCore::flush() {
  if (!failed_.is_ok()) return failed_;
  finished_ = true;
  if (exactly_once_) return Status::ok();  // the final checkpoint covers the rest
  if (!chunks_.empty() && chunks_.back().checkpoint == InfluxChunk::kOpen) {
    chunks_.back().checkpoint = InfluxChunk::kCommitted;
  }
  pump();
  update_backpressure();
  return drain("the end of input");
}

Result<std::string> InfluxWriterCore::snapshot(CheckpointId id) {
  if (!failed_.is_ok()) return failed_;
  if (!exactly_once_) return std::string();
  for (auto& c : chunks_)
    if (c.checkpoint == InfluxChunk::kOpen) c.checkpoint = id.value();
  if (chunks_.empty()) return std::string();
  std::string out;
  ByteWriter w(out);
  w.put_u8(kStateFormat);
  w.put_varint(chunks_.size());
  for (size_t i = 0; i < chunks_.size(); ++i) {
    const InfluxChunk& c = chunks_[i];
    const bool partial = i == 0 && !todo_.empty() &&
                         !(todo_.size() == 1 && todo_.front() == Range(0, static_cast<uint32_t>(c.ends.size())));
    if (!partial) {
      Serde<InfluxChunk>::write(w, c);
      continue;
    }
    // Only the points of the front chunk not yet written or refused: a
    // restore neither rewrites what is done nor refuses a point twice.
    InfluxChunk rest;
    rest.checkpoint = c.checkpoint;
    for (const Range& r : todo_) {
      for (uint32_t p = r.first; p < r.second; ++p) {
        rest.lines.append(range_text(c, {p, p + 1}));
        rest.ends.push_back(static_cast<uint32_t>(rest.lines.size()));
      }
    }
    Serde<InfluxChunk>::write(w, rest);
  }
  return out;
}

Status InfluxWriterCore::checkpoint_complete(CheckpointId id) {
  if (!failed_.is_ok()) return failed_;
  if (!exactly_once_) return Status::ok();
  completed_ = std::max(completed_, id.value());
  pump();
  update_backpressure();
  if (finished_) return drain("the final checkpoint");
  return Status::ok();
}

Status InfluxWriterCore::close() {
  *alive_ = false;
  client_.reset();  // calls back what is in flight (the actions do nothing now)
  return Status::ok();
}

}  // namespace sluice::influxdb
