// HttpPushSink<T>: records of a SLUICE_FIELDS struct T as JSON, POSTed in
// batches to an HTTP endpoint (a webhook or a push API) through the async
// HTTP client, with an idempotency key per batch, retries with backoff and
// backpressure while the receiver is down (push_core.h; README.md has the
// delivery guarantees).
//
//   auto sink = sluice::http_sink::HttpPushSink<FunnelUpdate>::from_uri(
//       "http://127.0.0.1:8080/funnel?batch_size=200&linger=200ms&auth_token=env:FUNNEL_TOKEN");
#pragma once

#include <memory>
#include <string>
#include <type_traits>

#include "connectors/http/push_config.h"
#include "connectors/http/push_core.h"
#include "engine/common/json.h"
#include "engine/common/uri.h"
#include "engine/runtime/sink.h"

namespace sluice::http_sink {

namespace detail {

/// A scalar field as text for a URL path segment; false for other types.
template <class F>
bool field_text(const F& f, std::string& out) {
  if constexpr (std::is_same_v<F, std::string>) {
    out = f;
    return true;
  } else if constexpr (std::is_same_v<F, bool>) {
    out = f ? "true" : "false";
    return true;
  } else if constexpr (std::is_arithmetic_v<F>) {
    out.clear();
    JsonSerde<F>::write(out, f);
    return true;
  } else {
    return false;
  }
}

}  // namespace detail

/// Checks that every {field} of the URL template is a scalar field of T.
template <class T>
Status check_url_fields(const PushSinkConfig& c) {
  if constexpr (!HasFields<T> || !std::is_default_constructible_v<T>) {
    return Status::invalid_argument("push sink: records of type " + std::string(type_name<T>()) +
                                    " do not declare SLUICE_FIELDS");
  } else {
    for (const auto& name : c.url_fields) {
      bool ok = false;
      std::string text;
      T probe{};
      probe.sluice_visit([&](const char* n, const auto& f) {
        if (name == n) ok = detail::field_text(f, text);
      });
      if (!ok) return Status::invalid_argument("push sink: {" + name + "} in the URL is not a scalar field of the record");
    }
    return Status::ok();
  }
}

/// Encodes records and hands them to the core. Task thread only.
template <class T>
class HttpPushWriter final : public runtime::SinkWriter<T> {
 public:
  HttpPushWriter(const PushSinkConfig& c, std::shared_ptr<const PushFormat> format)
      : template_(c.url_template), fields_(c.url_fields), core_(c, std::move(format)) {}

  Status initialize_state(const runtime::OperatorRestore& restore) override { return core_.initialize(restore); }
  Status open(runtime::OperatorContext& ctx) override { return core_.open(ctx); }
  Status write(const T& v, EventTime ts) override {
    std::string record;
    JsonSerde<T>::write(record, v);
    return core_.add(fields_.empty() ? template_ : url_of(v), std::move(record), ts);
  }
  Status flush() override { return core_.flush(); }
  Result<std::string> snapshot_state(CheckpointId id) override { return core_.snapshot(id); }
  Status notify_checkpoint_complete(CheckpointId id) override { return core_.checkpoint_complete(id); }
  Status close() override { return core_.close(); }

  PushSinkCore& core() { return core_; }

 private:
  // The template with each {field} replaced by the record's value, percent-encoded.
  std::string url_of(const T& v) {
    std::string url = template_, text;
    for (const auto& name : fields_) {
      v.sluice_visit([&](const char* n, const auto& f) {
        if (name == n) detail::field_text(f, text);
      });
      const std::string ph = "{" + name + "}";
      if (auto pos = url.find(ph); pos != std::string::npos) url.replace(pos, ph.size(), percent_encode(text));
    }
    return url;
  }

  std::string template_;
  std::vector<std::string> fields_;
  PushSinkCore core_;
};

/// The push sink of T (immutable description; one writer per subtask).
template <class T>
class HttpPushSink final : public runtime::Sink<T> {
 public:
  static Result<std::shared_ptr<const HttpPushSink>> from_uri(const std::string& uri) {
    SLUICE_ASSIGN_OR_RETURN(PushSinkConfig c, PushSinkConfig::parse(uri));
    SLUICE_RETURN_IF_ERROR(check_url_fields<T>(c));
    auto format = make_format(c);
    return std::shared_ptr<const HttpPushSink>(new HttpPushSink(std::move(c), std::move(format)));
  }
  std::string description() const override { return config_.uri.substr(0, config_.uri.find('?')); }
  std::unique_ptr<runtime::SinkWriter<T>> create_writer() const override {
    return std::make_unique<HttpPushWriter<T>>(config_, format_);
  }
  const PushSinkConfig& config() const { return config_; }

 private:
  HttpPushSink(PushSinkConfig c, std::shared_ptr<const PushFormat> f) : config_(std::move(c)), format_(std::move(f)) {}
  PushSinkConfig config_;
  // shared: immutable, used by every writer of this sink.
  std::shared_ptr<const PushFormat> format_;
};

/// For connectors::sink_from_uri.
template <class T>
Result<std::shared_ptr<const runtime::Sink<T>>> sink_from_uri(const std::string& uri) {
  SLUICE_ASSIGN_OR_RETURN(auto s, HttpPushSink<T>::from_uri(uri));
  return std::shared_ptr<const runtime::Sink<T>>(std::move(s));
}

}  // namespace sluice::http_sink
