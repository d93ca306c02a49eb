#include "connectors/prometheus/prometheus_sink.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <spdlog/spdlog.h>

#include <cctype>
#include <mutex>

#include "engine/common/metrics.h"

namespace sluice::prometheus_sink {

namespace {

bool valid_metric_name(const std::string& s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':' ||
              (i > 0 && std::isdigit(static_cast<unsigned char>(c)));
    if (!ok) return false;
  }
  return true;
}

bool valid_label_name(const std::string& s) {
  return valid_metric_name(s) && s.find(':') == std::string::npos && s.rfind("__", 0) != 0;
}

std::string percent_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t e = s.find(sep, start);
    if (e == std::string::npos) e = s.size();
    if (e > start) out.push_back(s.substr(start, e - start));
    start = e + 1;
  }
  return out;
}

/// sluice_prometheus_sink_* families: how the sinks themselves fare.
struct SinkFamilies {
  prometheus::Family<prometheus::Counter>& dropped;
  prometheus::Family<prometheus::Gauge>& series;
  prometheus::Family<prometheus::Counter>& updates;
};

SinkFamilies& sink_families() {
  static SinkFamilies f{
      prometheus::BuildCounter()
          .Name("sluice_prometheus_sink_series_dropped_total")
          .Help("Updates of a results metric refused because a new series would exceed its max_series")
          .Register(metrics::registry()),
      prometheus::BuildGauge()
          .Name("sluice_prometheus_sink_series")
          .Help("Series a results metric has in this process")
          .Register(metrics::registry()),
      prometheus::BuildCounter()
          .Name("sluice_prometheus_sink_updates_total")
          .Help("Records written to a results metric")
          .Register(metrics::registry()),
  };
  return f;
}

class RegistryTable final : public SeriesTable {
 public:
  explicit RegistryTable(const SinkConfig& c) : c_(c) {
    auto& sf = sink_families();
    dropped_ = &sf.dropped.Add({{"metric", c.metric}});
    series_gauge_ = &sf.series.Add({{"metric", c.metric}});
    updates_ = &sf.updates.Add({{"metric", c.metric}});
    if (c.kind == MetricKind::kGauge) {
      gauges_ = &prometheus::BuildGauge().Name(c.metric).Help(c.help).Register(metrics::registry());
    } else {
      counters_ = &prometheus::BuildCounter().Name(c.metric).Help(c.help).Register(metrics::registry());
    }
  }

  bool compatible(const SinkConfig& o) const {
    return o.kind == c_.kind && o.labels == c_.labels && o.group == c_.group;
  }

  void update(const std::vector<std::string>& label_values, double value, double group) override {
    std::lock_guard lk(mu_);
    updates_->Increment();
    if (!c_.group.empty() && group > newest_group_) {
      newest_group_ = group;
      for (auto it = entries_.begin(); it != entries_.end();) {
        if (it->second.group < group) {
          remove_locked(it->second);
          it = entries_.erase(it);
        } else {
          ++it;
        }
      }
    }
    auto it = entries_.find(label_values);
    if (it == entries_.end()) {
      if (entries_.size() >= c_.max_series) {
        dropped_->Increment();
        if (!warned_) {
          warned_ = true;
          spdlog::warn("prometheus sink {}: max_series={} reached; further new series are dropped "
                       "(counted in sluice_prometheus_sink_series_dropped_total)",
                       c_.metric, c_.max_series);
        }
        return;
      }
      std::map<std::string, std::string> labels;
      for (size_t i = 0; i < c_.labels.size() && i < label_values.size(); ++i) labels[c_.labels[i]] = label_values[i];
      Entry e;
      if (gauges_) e.gauge = &gauges_->Add(labels);
      else e.counter = &counters_->Add(labels);
      it = entries_.emplace(label_values, e).first;
      series_gauge_->Set(static_cast<double>(entries_.size()));
    }
    it->second.group = std::max(it->second.group, group);
    if (it->second.gauge) {
      it->second.gauge->Set(value);
    } else if (value >= 0) {
      it->second.counter->Increment(value);  // counters only go up
    }
  }

  size_t series() const override {
    std::lock_guard lk(mu_);
    return entries_.size();
  }

 private:
  struct Entry {
    prometheus::Gauge* gauge = nullptr;
    prometheus::Counter* counter = nullptr;
    double group = 0;
  };
  void remove_locked(const Entry& e) {
    if (e.gauge) gauges_->Remove(e.gauge);
    if (e.counter) counters_->Remove(e.counter);
    series_gauge_->Set(static_cast<double>(entries_.size() - 1));
  }

  const SinkConfig c_;
  prometheus::Family<prometheus::Gauge>* gauges_ = nullptr;
  prometheus::Family<prometheus::Counter>* counters_ = nullptr;
  prometheus::Counter* dropped_ = nullptr;
  prometheus::Gauge* series_gauge_ = nullptr;
  prometheus::Counter* updates_ = nullptr;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, Entry> entries_;
  double newest_group_ = -1e300;
  bool warned_ = false;
};

}  // namespace

Result<SinkConfig> SinkConfig::parse(const std::string& uri) {
  const std::string kScheme = "prometheus:";
  if (uri.rfind(kScheme, 0) != 0) return Status::invalid_argument("not a prometheus: URI: " + uri);
  std::string rest = uri.substr(kScheme.size());
  while (!rest.empty() && rest.front() == '/') rest.erase(0, 1);  // prometheus://name too
  SinkConfig c;
  std::string query;
  if (auto q = rest.find('?'); q != std::string::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  c.metric = rest;
  auto bad = [&](const std::string& why) {
    return Status::invalid_argument("sink '" + uri + "': " + why +
                                    " (form: prometheus:METRIC?labels=f1,f2&value=field[&type=gauge|counter]"
                                    "[&group=field][&max_series=N][&help=text])");
  };
  if (!valid_metric_name(c.metric)) return bad("metric name '" + c.metric + "' is not [a-zA-Z_:][a-zA-Z0-9_:]*");
  std::string type = "gauge";
  for (const auto& kv : split(query, '&')) {
    auto eq = kv.find('=');
    if (eq == std::string::npos) return bad("parameter '" + kv + "' has no value");
    std::string k = kv.substr(0, eq), v = percent_decode(kv.substr(eq + 1));
    if (k == "labels") {
      c.labels = split(v, ',');
    } else if (k == "value") {
      c.value = v;
    } else if (k == "type") {
      type = v;
    } else if (k == "group") {
      c.group = v;
    } else if (k == "help") {
      c.help = v;
    } else if (k == "max_series") {
      try {
        size_t pos = 0;
        long long n = std::stoll(v, &pos);
        if (pos != v.size() || n < 1) throw std::invalid_argument(v);
        c.max_series = static_cast<size_t>(n);
      } catch (...) {
        return bad("max_series must be a positive integer");
      }
    } else {
      return bad("unknown parameter '" + k + "'");
    }
  }
  if (type == "gauge") {
    c.kind = MetricKind::kGauge;
    if (c.value.empty()) return bad("a gauge needs value=<numeric field>");
  } else if (type == "counter") {
    c.kind = MetricKind::kCounter;
    if (!c.group.empty()) return bad("group= applies to gauges only");
  } else {
    return bad("type must be gauge or counter");
  }
  for (const auto& l : c.labels) {
    if (!valid_label_name(l)) return bad("label '" + l + "' is not a valid Prometheus label name");
  }
  if (c.help.empty()) {
    c.help = "Sluice results: " + (c.value.empty() ? std::string("records") : c.value);
    for (size_t i = 0; i < c.labels.size(); ++i) c.help += (i ? "," : " per ") + c.labels[i];
  }
  return c;
}

std::string SinkConfig::describe() const {
  return "prometheus:" + metric + (kind == MetricKind::kGauge ? " (gauge)" : " (counter)");
}

Result<std::shared_ptr<SeriesTable>> SeriesTable::get(const SinkConfig& config) {
  static std::mutex mu;
  // shared: every sink of this metric name in the process, for its life.
  static std::map<std::string, std::shared_ptr<RegistryTable>> tables;
  std::lock_guard lk(mu);
  auto it = tables.find(config.metric);
  if (it != tables.end()) {
    if (!it->second->compatible(config)) {
      return Status::invalid_argument("prometheus sink: metric " + config.metric +
                                      " is already written in this process with another type, labels or group");
    }
    return std::shared_ptr<SeriesTable>(it->second);
  }
  std::shared_ptr<RegistryTable> t;
  try {
    t = std::make_shared<RegistryTable>(config);
  } catch (const std::exception& e) {
    return Status::invalid_argument("prometheus sink: cannot register metric " + config.metric + ": " + e.what());
  }
  tables[config.metric] = t;
  return std::shared_ptr<SeriesTable>(t);
}

}  // namespace sluice::prometheus_sink
