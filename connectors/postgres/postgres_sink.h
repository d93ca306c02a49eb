// PostgresSink<T>: records of a SLUICE_FIELDS struct T as rows of one
// PostgreSQL table, appended or upserted, exactly-once with checkpointing
// (README.md explains the protocol and why it is sound).
//
//   auto sink = sluice::postgres::PostgresSink<PageCount>::from_uri(
//       "postgres://sluice@127.0.0.1:5432/sluice?table=page_counts"
//       "&mode=upsert&key=window_start,page_url&create_table=true");
//
// Columns are T's fields, by name: int64 -> bigint, int32 -> integer,
// double -> double precision, bool -> boolean, std::string -> text,
// std::vector<std::string> -> text[]. In upsert mode, delete_when=FIELD
// names a bool field that deletes the key's row instead (not a column).
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>

#include "connectors/postgres/config.h"
#include "connectors/postgres/writer_core.h"
#include "engine/common/json.h"
#include "engine/runtime/sink.h"

namespace sluice::postgres {

/// The column type of a field type; void when there is none.
template <class F>
constexpr std::optional<PgType> pg_type_of() {
  if constexpr (std::is_same_v<F, int64_t> || std::is_same_v<F, long long>) {
    return PgType::kBigint;
  } else if constexpr (std::is_same_v<F, int32_t>) {
    return PgType::kInteger;
  } else if constexpr (std::is_same_v<F, double>) {
    return PgType::kDouble;
  } else if constexpr (std::is_same_v<F, bool>) {
    return PgType::kBoolean;
  } else if constexpr (std::is_same_v<F, std::string>) {
    return PgType::kText;
  } else if constexpr (std::is_same_v<F, std::vector<std::string>>) {
    return PgType::kTextArray;
  } else {
    return std::nullopt;
  }
}

/// The columns of T (without the `skip` field), or an error naming every
/// field without a column type.
template <class T>
Result<std::vector<Column>> columns_of(const std::string& skip = {}) {
  if constexpr (HasFields<T>) {
    std::vector<Column> cols;
    std::string bad;
    T probe{};
    probe.sluice_visit([&](const char* name, const auto& f) {
      using F = std::decay_t<decltype(f)>;
      if (!skip.empty() && skip == name) return;
      if (auto t = pg_type_of<F>()) {
        cols.push_back({name, *t});
      } else {
        bad += (bad.empty() ? "" : ", ") + std::string(name) + " (" + std::string(type_name<F>()) + ")";
      }
    });
    if (!bad.empty()) {
      return Status::invalid_argument(
          "postgres sink: fields without a column type: " + bad +
          "; supported: int64 (bigint), int32 (integer), double (double precision), bool (boolean), "
          "std::string (text), std::vector<std::string> (text[])");
    }
    if (cols.empty()) return Status::invalid_argument("postgres sink: the record type has no fields");
    return cols;
  } else {
    return Status::invalid_argument("postgres sink: records of type " + std::string(type_name<T>()) +
                                    " have no named fields (declare them with SLUICE_FIELDS)");
  }
}

/// Encodes records as COPY text rows and hands them to the core. Task
/// thread only; created by PostgresSink::create_writer, owned by the
/// SinkOperator.
template <class T>
class PostgresSinkWriter final : public runtime::SinkWriter<T> {
 public:
  PostgresSinkWriter(PostgresSinkConfig config, std::vector<Column> columns, PostgresSinkHooks hooks)
      : delete_when_(config.delete_when), core_(std::move(config), std::move(columns), std::move(hooks)) {}

  Status initialize_state(const runtime::OperatorRestore& restore) override { return core_.initialize(restore); }
  Status open(runtime::OperatorContext& ctx) override {
    ctx_ = &ctx;
    return core_.open(ctx);
  }
  Status write(const T& value, EventTime) override {
    row_.clear();
    std::string problem;
    bool first = true;
    bool deletes = false;
    value.sluice_visit([&](const char* name, const auto& f) {
      using F = std::decay_t<decltype(f)>;
      if (!delete_when_.empty() && delete_when_ == name) {
        if constexpr (std::is_same_v<F, bool>) deletes = f;
        return;
      }
      if (!first) row_.push_back('\t');
      first = false;
      if constexpr (std::is_same_v<F, std::string>) {
        if (problem.empty()) {
          if (std::string p = text_problem(f); !p.empty()) problem = std::string("field ") + name + " holds " + p;
        }
        append_copy_text(row_, f);
      } else if constexpr (std::is_same_v<F, std::vector<std::string>>) {
        for (const auto& item : f) {
          if (problem.empty()) {
            if (std::string p = text_problem(item); !p.empty()) problem = std::string("field ") + name + " holds " + p;
          }
        }
        append_copy_text_array(row_, f);
      } else if constexpr (std::is_same_v<F, bool>) {
        row_.push_back(f ? 't' : 'f');
      } else if constexpr (std::is_same_v<F, double>) {
        if (std::isnan(f)) {
          row_ += "NaN";
        } else if (std::isinf(f)) {
          row_ += f > 0 ? "Infinity" : "-Infinity";
        } else {
          char buf[32];
          auto r = std::to_chars(buf, buf + sizeof buf, f);  // shortest round-trip form
          row_.append(buf, r.ptr);
        }
      } else if constexpr (std::is_integral_v<F>) {
        char buf[24];
        auto r = std::to_chars(buf, buf + sizeof buf, f);
        row_.append(buf, r.ptr);
      }
    });
    if (!problem.empty()) {
      // PostgreSQL would refuse the whole batch, at every retry: the record
      // goes to the dead-letter output instead.
      DeadLetter dl;
      dl.reason = "postgres sink: " + problem;
      dl.origin = "postgres sink";
      if constexpr (JsonWritable<T>) JsonSerde<T>::write(dl.payload, value);
      ctx_->dead_letter(std::move(dl));
      return Status::ok();
    }
    if (!delete_when_.empty()) row_ += deletes ? "\tt" : "\tf";
    row_.push_back('\n');
    return core_.append_row(row_);
  }
  Status flush() override { return core_.flush(); }
  Result<std::string> snapshot_state(CheckpointId id) override { return core_.snapshot(id); }
  Status notify_checkpoint_complete(CheckpointId id) override { return core_.checkpoint_complete(id); }
  bool commit_in_progress() const override { return core_.commit_in_progress(); }
  Status close() override { return core_.close(); }

  PgWriterCore& core() { return core_; }

 private:
  std::string delete_when_;
  PgWriterCore core_;
  runtime::OperatorContext* ctx_ = nullptr;
  std::string row_;
};

/// A Postgres sink of T (immutable description; one writer per subtask).
template <class T>
class PostgresSink final : public runtime::Sink<T> {
 public:
  PostgresSink(PostgresSinkConfig config, std::vector<Column> columns, PostgresSinkHooks hooks = {})
      : config_(std::move(config)), columns_(std::move(columns)), hooks_(std::move(hooks)) {}

  /// Parses `uri` and checks it against T's fields (key columns exist).
  static Result<std::shared_ptr<const PostgresSink<T>>> from_uri(const std::string& uri,
                                                                 PostgresSinkHooks hooks = {}) {
    SLUICE_ASSIGN_OR_RETURN(PostgresSinkConfig c, parse_sink_uri(uri));
    if (!c.delete_when.empty()) {
      bool is_bool = false, found = false;
      if constexpr (HasFields<T>) {
        T probe{};
        probe.sluice_visit([&](const char* name, const auto&) { found = found || c.delete_when == name; });
        probe.sluice_visit([&](const char* name, const auto& f) {
          if (c.delete_when == name) is_bool = std::is_same_v<std::decay_t<decltype(f)>, bool>;
        });
      }
      if (!found || !is_bool) {
        return Status::invalid_argument("postgres sink " + c.uri + ": delete_when='" + c.delete_when +
                                        "' must name a bool field of the record");
      }
    }
    auto cols = columns_of<T>(c.delete_when);
    if (!cols.is_ok()) return cols.status().with_context("sink " + c.uri);
    for (const auto& k : c.key) {
      bool found = false;
      std::string names;
      for (const auto& col : *cols) {
        found = found || col.name == k;
        names += (names.empty() ? "" : ", ") + col.name;
      }
      if (!found) {
        return Status::invalid_argument("postgres sink " + c.uri + ": key column '" + k +
                                        "' is not a field of the record (fields: " + names + ")");
      }
    }
    return std::make_shared<const PostgresSink<T>>(std::move(c), std::move(*cols), std::move(hooks));
  }

  std::string description() const override { return config_.uri; }
  std::unique_ptr<runtime::SinkWriter<T>> create_writer() const override {
    return std::make_unique<PostgresSinkWriter<T>>(config_, columns_, hooks_);
  }
  const PostgresSinkConfig& config() const { return config_; }

 private:
  PostgresSinkConfig config_;
  std::vector<Column> columns_;
  PostgresSinkHooks hooks_;
};

/// For connectors::sink_from_uri.
template <class T>
Result<std::shared_ptr<const runtime::Sink<T>>> sink_from_uri(const std::string& uri) {
  SLUICE_ASSIGN_OR_RETURN(auto s, PostgresSink<T>::from_uri(uri));
  return std::shared_ptr<const runtime::Sink<T>>(std::move(s));
}

}  // namespace sluice::postgres
