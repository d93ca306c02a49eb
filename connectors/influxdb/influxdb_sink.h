// InfluxDbSink<T>: records of a SLUICE_FIELDS struct T as InfluxDB points
// (line protocol over HTTP, 1.x /write or 2.x /api/v2/write), exactly-once
// in effect with checkpointing (README.md says precisely what that means).
//
//   auto sink = sluice::influxdb::InfluxDbSink<PageCount>::from_uri(
//       "influxdb://127.0.0.1:8086/sluice?measurement=page_counts&tags=page_url"
//       "&fields=count&time=window_start&precision=ms");
//
// Tags: text, numbers or bool (written as text). Fields: integers (i),
// floats, bool, strings. Time: an integer field in `precision` units, or
// the record's event time. std::optional<X> works as X; an empty one is a
// missing tag or field, and such a record goes to the dead-letter output.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "connectors/influxdb/config.h"
#include "connectors/influxdb/line_protocol.h"
#include "connectors/influxdb/point_layout.h"
#include "connectors/influxdb/writer_core.h"
#include "engine/common/json.h"
#include "engine/runtime/sink.h"

namespace sluice::influxdb {

namespace detail {

template <class F>
struct Unoptional {
  using type = F;
};
template <class F>
struct Unoptional<std::optional<F>> {
  using type = F;
};
template <class F>
using unoptional_t = typename Unoptional<F>::type;

template <class V>
constexpr bool kScalar = std::is_arithmetic_v<V> || std::is_same_v<V, std::string>;
template <class V>
constexpr bool kInteger = std::is_integral_v<V> && !std::is_same_v<V, bool>;

/// The field's value, or null when it is an empty optional.
template <class F>
const unoptional_t<F>* value_of(const F& f) {
  if constexpr (std::is_same_v<F, unoptional_t<F>>) {
    return &f;
  } else {
    return f ? &*f : nullptr;
  }
}

/// Appends `v` as the text of a tag value; a problem, or empty.
template <class V>
std::string append_tag_text(std::string& out, const V& v) {
  if constexpr (std::is_same_v<V, std::string>) {
    out += v;
  } else if constexpr (std::is_same_v<V, bool>) {
    append_bool(out, v);
  } else if constexpr (std::is_floating_point_v<V>) {
    if (!std::isfinite(v)) return "is not a finite number";
    append_float(out, static_cast<double>(v));
  } else if constexpr (std::is_unsigned_v<V>) {
    out += std::to_string(v);
  } else {
    append_decimal(out, static_cast<int64_t>(v));
  }
  return "";
}

/// Appends `v` as a field value; a problem, or empty.
template <class V>
std::string append_field_value(std::string& out, const V& v) {
  if constexpr (std::is_same_v<V, std::string>) {
    if (std::string p = string_value_problem(v); !p.empty()) return p;
    append_string_value(out, v);
  } else if constexpr (std::is_same_v<V, bool>) {
    append_bool(out, v);
  } else if constexpr (std::is_floating_point_v<V>) {
    if (!std::isfinite(v)) return "is not a finite number (InfluxDB stores no NaN or infinity)";
    append_float(out, static_cast<double>(v));
  } else {
    if constexpr (std::is_unsigned_v<V> && sizeof(V) >= sizeof(int64_t)) {
      if (v > static_cast<V>(std::numeric_limits<int64_t>::max())) {
        return "is " + std::to_string(v) + ", above InfluxDB's largest integer";
      }
    }
    append_integer(out, static_cast<int64_t>(v));
  }
  return "";
}

/// A field type as messages name it: "int64", "optional<string>", ...
template <class F>
std::string describe_type() {
  if constexpr (!std::is_same_v<F, unoptional_t<F>>) {
    return "optional<" + describe_type<unoptional_t<F>>() + ">";
  } else if constexpr (std::is_same_v<F, std::string>) {
    return "string";
  } else if constexpr (std::is_same_v<F, bool>) {
    return "bool";
  } else if constexpr (std::is_integral_v<F>) {
    return std::string(std::is_signed_v<F> ? "int" : "uint") + std::to_string(8 * sizeof(F));
  } else if constexpr (std::is_floating_point_v<F>) {
    return sizeof(F) == sizeof(float) ? "float" : "double";
  } else {
    return std::string(type_name<F>());
  }
}

/// T's fields as make_layout sees them, or why T has none.
template <class T>
Result<std::vector<FieldInfo>> fields_of() {
  if constexpr (HasFields<T>) {
    std::vector<FieldInfo> out;
    T probe{};
    probe.sluice_visit([&](const char* name, const auto& f) {
      using V = unoptional_t<std::decay_t<decltype(f)>>;
      FieldInfo i;
      i.name = name;
      i.type = describe_type<std::decay_t<decltype(f)>>();
      i.can_tag = i.can_field = kScalar<V>;
      i.can_time = kInteger<V>;
      out.push_back(std::move(i));
    });
    return out;
  } else {
    return Status::invalid_argument("influxdb sink: records of type " + std::string(type_name<T>()) +
                                    " have no named fields (declare them with SLUICE_FIELDS)");
  }
}

}  // namespace detail

/// Turns records into points and hands them to the core. Task thread
/// only; created by InfluxDbSink::create_writer, owned by the SinkOperator.
template <class T>
class InfluxDbSinkWriter final : public runtime::SinkWriter<T> {
 public:
  InfluxDbSinkWriter(InfluxSinkConfig config, std::shared_ptr<const PointLayout> layout)
      : core_(std::move(config)), layout_(std::move(layout)), tags_(layout_->tag_field.size()) {}

  Status initialize_state(const runtime::OperatorRestore& restore) override { return core_.initialize(restore); }
  Status open(runtime::OperatorContext& ctx) override { return core_.open(ctx); }
  Status write(const T& value, EventTime ts) override {
    if (encode(value, ts)) return core_.append(line_);
    std::string payload;
    if constexpr (JsonWritable<T>) JsonSerde<T>::write(payload, value);
    core_.reject(problem_, std::move(payload));
    return Status::ok();
  }
  Status flush() override { return core_.flush(); }
  Result<std::string> snapshot_state(CheckpointId id) override { return core_.snapshot(id); }
  Status notify_checkpoint_complete(CheckpointId id) override { return core_.checkpoint_complete(id); }
  Status close() override { return core_.close(); }

  InfluxWriterCore& core() { return core_; }

  /// The point of `value` as a line (ending in '\n') in line(); false
  /// with the reason in problem() if it cannot be written.
  bool encode(const T& value, EventTime ts) {
    if constexpr (!HasFields<T>) {
      problem_ = "the record type has no fields";
      return false;
    } else {
      return encode_fields(value, ts);
    }
  }
  const std::string& line() const { return line_; }
  const std::string& problem() const { return problem_; }

 private:
  bool encode_fields(const T& value, EventTime ts) {
    const PointLayout& l = *layout_;
    problem_.clear();
    fields_.clear();
    for (auto& t : tags_) t.clear();
    int index = 0;
    int64_t time = 0;
    value.sluice_visit([&](const char* name, const auto& f) {
      const int i = index++;
      const Role role = l.roles[i];
      if (role == Role::kSkip || !problem_.empty()) return;
      using V = detail::unoptional_t<std::decay_t<decltype(f)>>;
      if constexpr (detail::kScalar<V>) {
        const V* v = detail::value_of(f);
        const char* what = role == Role::kTag ? "tag" : role == Role::kField ? "field" : "time field";
        if (!v) {
          problem_ = std::string(what) + " '" + name + "' is missing (null)";
          return;
        }
        std::string p;
        if (role == Role::kTag) {
          std::string& t = tags_[l.tag_slot[i]];
          p = detail::append_tag_text(t, *v);
          if (p.empty()) p = name_problem(t, Element::kTagValue);
        } else if (role == Role::kField) {
          if (!fields_.empty()) fields_ += ',';
          fields_ += l.prefix[i];
          p = detail::append_field_value(fields_, *v);
        } else if constexpr (detail::kInteger<V>) {
          if (std::is_unsigned_v<V> && static_cast<uint64_t>(*v) > static_cast<uint64_t>(kMaxTimeNs)) {
            p = "is " + std::to_string(*v) + ", outside the range InfluxDB stores";
          }
          time = static_cast<int64_t>(*v);
        }
        if (!p.empty()) problem_ = std::string(what) + " '" + name + "' " + p;
      }
    });
    if (!problem_.empty()) return false;
    line_ = l.measurement;
    for (size_t s = 0; s < tags_.size(); ++s) {
      line_ += l.prefix[l.tag_field[s]];
      append_escaped(line_, tags_[s], Element::kTagValue);
    }
    if (line_.size() > 65535) {
      problem_ = "the series key (measurement and tags) is " + std::to_string(line_.size()) +
                 " bytes; InfluxDB's limit is 65535";
      return false;
    }
    const Precision p = l.precision;
    if (!l.has_time_field) {
      if (ts.is_min()) {
        problem_ = "the record has no event time; give the time field with time=FIELD";
        return false;
      }
      bool overflow = false;
      time = from_millis(ts.ms(), p, &overflow);
      if (overflow) time = std::numeric_limits<int64_t>::max();
    }
    if (!timestamp_in_range(time, p)) {
      problem_ = "timestamp " + std::to_string(time) + " (" + std::string(precision_name(p)) +
                 ") is outside the range InfluxDB stores (1677-09-21 to 2262-04-11)";
      return false;
    }
    line_ += ' ';
    line_ += fields_;
    line_ += ' ';
    append_decimal(line_, time);
    line_ += '\n';
    return true;
  }

  InfluxWriterCore core_;
  std::shared_ptr<const PointLayout> layout_;
  std::vector<std::string> tags_;  // per tag slot, unescaped
  std::string fields_;
  std::string line_;
  std::string problem_;
};

/// An InfluxDB sink of T (immutable description; one writer per subtask).
template <class T>
class InfluxDbSink final : public runtime::Sink<T> {
 public:
  InfluxDbSink(InfluxSinkConfig config, PointLayout layout)
      : config_(std::move(config)), layout_(std::make_shared<const PointLayout>(std::move(layout))) {}

  /// Parses `uri` and checks it against T's fields.
  static Result<std::shared_ptr<const InfluxDbSink<T>>> from_uri(const std::string& uri) {
    SLUICE_ASSIGN_OR_RETURN(InfluxSinkConfig c, parse_sink_uri(uri));
    SLUICE_ASSIGN_OR_RETURN(std::vector<FieldInfo> fields, detail::fields_of<T>());
    SLUICE_ASSIGN_OR_RETURN(PointLayout layout, make_layout(c, fields));
    return std::make_shared<const InfluxDbSink<T>>(std::move(c), std::move(layout));
  }

  std::string description() const override { return config_.uri; }
  std::unique_ptr<runtime::SinkWriter<T>> create_writer() const override {
    return std::make_unique<InfluxDbSinkWriter<T>>(config_, layout_);
  }
  const InfluxSinkConfig& config() const { return config_; }

 private:
  InfluxSinkConfig config_;
  std::shared_ptr<const PointLayout> layout_;  // shared: every writer of the sink reads it
};

/// For connectors::sink_from_uri.
template <class T>
Result<std::shared_ptr<const runtime::Sink<T>>> sink_from_uri(const std::string& uri) {
  SLUICE_ASSIGN_OR_RETURN(auto s, InfluxDbSink<T>::from_uri(uri));
  return std::shared_ptr<const runtime::Sink<T>>(std::move(s));
}

}  // namespace sluice::influxdb
