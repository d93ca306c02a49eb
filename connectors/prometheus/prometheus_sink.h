// The Prometheus results sink: records become labelled gauges or counters
// in the process's metrics registry, served on its /metrics (the
// taskmanager's --metrics-bind, run-local's too when it serves metrics).
//
//   prometheus:clicks_per_page?labels=page_url&value=count&group=window_start
//
// See connectors/prometheus/README.md for every parameter. Not
// transactional: a gauge shows the latest value written (replayed records
// after a restart write the same values again); a counter is at-least-once.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/common/serde.h"
#include "engine/common/status.h"
#include "engine/runtime/sink.h"

namespace sluice::prometheus_sink {

enum class MetricKind { kGauge, kCounter };

/// What a prometheus: URI asks for. Immutable once parsed.
struct SinkConfig {
  std::string metric;               // the metric family name
  std::vector<std::string> labels;  // record fields that become labels, in order
  std::string value;                // numeric field; empty: counters count records (+1)
  std::string group;                // numeric field; newer group value evicts older series (gauges)
  MetricKind kind = MetricKind::kGauge;
  /// Series of this metric per process; more are dropped and counted. Default 10000.
  size_t max_series = 10000;
  std::string help;

  static Result<SinkConfig> parse(const std::string& uri);
  std::string describe() const;
};

/// The live series of one metric name in this process, shared by every
/// sink subtask that writes it (a taskmanager runs several). Thread-safe:
/// writers call update() on their task threads, scrapes read the registry.
class SeriesTable {
 public:
  /// The process-wide table of `config.metric`; a second sink with the
  /// same name must agree on kind and labels.
  static Result<std::shared_ptr<SeriesTable>> get(const SinkConfig& config);
  virtual ~SeriesTable() = default;
  /// `label_values` in config order. `group` ignored without a group field.
  virtual void update(const std::vector<std::string>& label_values, double value, double group) = 0;
  virtual size_t series() const = 0;
};

/// Field name -> value of one record, for labels (as text) and numbers.
struct FieldValue {
  bool numeric = false;
  double number = 0;
  std::string text;
};

template <class T>
void visit_record_fields(const T& v, const std::function<void(const char*, FieldValue)>& f) {
  if constexpr (HasFields<T>) v.sluice_visit([&](const char* name, const auto& field) {
    using F = std::decay_t<decltype(field)>;
    FieldValue fv;
    if constexpr (std::is_same_v<F, bool>) {
      fv.numeric = true;
      fv.number = field ? 1 : 0;
      fv.text = field ? "true" : "false";
    } else if constexpr (std::is_arithmetic_v<F>) {
      fv.numeric = true;
      fv.number = static_cast<double>(field);
      fv.text = std::to_string(field);
    } else if constexpr (std::is_convertible_v<F, std::string_view>) {
      fv.text = std::string(std::string_view(field));
    } else {
      fv.text = "";
    }
    f(name, std::move(fv));
  });
}

/// Checks that `config` names fields of T of the right kinds.
template <class T>
Status check_fields(const SinkConfig& c) {
  std::map<std::string, bool> numeric;
  if constexpr (!HasFields<T> || !std::is_default_constructible_v<T>) {
    return Status::invalid_argument("prometheus sink: records of type " + std::string(type_name<T>()) +
                                    " do not declare SLUICE_FIELDS");
  } else {
    T probe{};
    visit_record_fields(probe, [&](const char* name, FieldValue v) { numeric[name] = v.numeric; });
  }
  std::string known;
  for (const auto& [n, _] : numeric) known += (known.empty() ? "" : ", ") + n;
  for (const auto& l : c.labels) {
    if (!numeric.count(l)) return Status::invalid_argument("prometheus sink: no field '" + l + "' (fields: " + known + ")");
  }
  for (const auto* f : {&c.value, &c.group}) {
    if (f->empty()) continue;
    auto it = numeric.find(*f);
    if (it == numeric.end()) return Status::invalid_argument("prometheus sink: no field '" + *f + "' (fields: " + known + ")");
    if (!it->second) return Status::invalid_argument("prometheus sink: field '" + *f + "' is not numeric");
  }
  return Status::ok();
}

template <class T>
class PrometheusSinkWriter final : public runtime::SinkWriter<T> {
 public:
  PrometheusSinkWriter(const SinkConfig& c, std::shared_ptr<SeriesTable> table) : c_(c), table_(std::move(table)) {
    values_.resize(c_.labels.size());
  }
  Status write(const T& v, EventTime) override {
    double value = c_.value.empty() ? 1.0 : 0.0, group = 0;
    visit_record_fields(v, [&](const char* name, FieldValue f) {
      for (size_t i = 0; i < c_.labels.size(); ++i)
        if (c_.labels[i] == name) values_[i] = f.text;
      if (!c_.value.empty() && c_.value == name) value = f.number;
      if (!c_.group.empty() && c_.group == name) group = f.number;
    });
    table_->update(values_, value, group);
    return Status::ok();
  }

 private:
  const SinkConfig c_;
  std::shared_ptr<SeriesTable> table_;
  std::vector<std::string> values_;
};

/// Immutable description, built by the job (in every process that builds
/// the graph); its writers share the process's SeriesTable.
template <class T>
class PrometheusSink final : public runtime::Sink<T> {
 public:
  static Result<std::shared_ptr<PrometheusSink>> from_uri(const std::string& uri) {
    SLUICE_ASSIGN_OR_RETURN(SinkConfig c, SinkConfig::parse(uri));
    SLUICE_RETURN_IF_ERROR(check_fields<T>(c));
    SLUICE_ASSIGN_OR_RETURN(auto table, SeriesTable::get(c));
    return std::shared_ptr<PrometheusSink>(new PrometheusSink(std::move(c), std::move(table)));
  }
  std::string description() const override { return c_.describe(); }
  std::unique_ptr<runtime::SinkWriter<T>> create_writer() const override {
    return std::make_unique<PrometheusSinkWriter<T>>(c_, table_);
  }

 private:
  PrometheusSink(SinkConfig c, std::shared_ptr<SeriesTable> t) : c_(std::move(c)), table_(std::move(t)) {}
  SinkConfig c_;
  // shared: every writer of this sink and the process-wide table map.
  std::shared_ptr<SeriesTable> table_;
};

template <class T>
Result<std::shared_ptr<const runtime::Sink<T>>> sink_from_uri(const std::string& uri) {
  SLUICE_ASSIGN_OR_RETURN(auto s, PrometheusSink<T>::from_uri(uri));
  return std::shared_ptr<const runtime::Sink<T>>(std::move(s));
}

}  // namespace sluice::prometheus_sink
