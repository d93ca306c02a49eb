#include "connectors/http/siem_formats.h"

#include <simdjson.h>

#include <cstdio>
#include <string_view>

#include "engine/common/json.h"

namespace sluice::http_sink {

namespace {

/// A record's JSON parsed with a per-thread parser (formats are shared by
/// the writers of every task thread).
simdjson::dom::parser& parser() {
  thread_local simdjson::dom::parser p;
  return p;
}

/// The value of `field` in `record` as JSON text (a string stays quoted);
/// error if it is missing, null or empty.
Result<std::string> field_json(simdjson::dom::object record, const std::string& field) {
  simdjson::dom::element v;
  if (record[field].get(v) != simdjson::SUCCESS || v.is_null()) {
    return Status::invalid_argument("the record has no field \"" + field + "\"");
  }
  std::string out = simdjson::minify(v);
  if (out == "\"\"") return Status::invalid_argument("field \"" + field + "\" of the record is empty");
  return out;
}

/// Reads an optional member: `out` keeps its value when it is missing or of another type.
template <class R, class T>
void optional_member(R&& r, T& out) {
  T v{};
  if (std::forward<R>(r).get(v) == simdjson::SUCCESS) out = v;
}

/// "1733480000.123" from epoch ms (negative times are clamped to 0).
std::string epoch_seconds(int64_t ms) {
  if (ms < 0) ms = 0;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld.%03lld", static_cast<long long>(ms / 1000), static_cast<long long>(ms % 1000));
  return buf;
}

void append_member(std::string& out, const char* name, const std::string& value) {
  if (value.empty()) return;
  if (out.size() > 1) out += ',';
  out += "\"";
  out += name;
  out += "\":";
  json_append_string(out, value);
}

class SplunkHecFormat final : public PushFormat {
 public:
  explicit SplunkHecFormat(const PushSinkConfig& c)
      : id_field_(c.id_field), time_field_(c.time_field), host_(c.hec_host), source_(c.hec_source),
        sourcetype_(c.hec_sourcetype), index_(c.index) {}

  std::string content_type() const override { return "application/json"; }
  std::string auth_scheme() const override { return "Splunk"; }

  Result<std::string> encode(std::string record, EventTime ts) const override {
    int64_t ms = ts.is_min() ? 0 : ts.ms();
    std::string id;
    if (!id_field_.empty() || !time_field_.empty()) {
      simdjson::dom::object obj;
      if (parser().parse(record).get_object().get(obj) != simdjson::SUCCESS) {
        return Status::invalid_argument("the record is not a JSON object");
      }
      if (!id_field_.empty()) {
        SLUICE_ASSIGN_OR_RETURN(id, field_json(obj, id_field_));
      }
      if (!time_field_.empty()) {
        if (obj[time_field_].get_int64().get(ms) != simdjson::SUCCESS) {
          return Status::invalid_argument("time_field \"" + time_field_ + "\" of the record is not an integer (epoch ms)");
        }
      }
    }
    std::string out = "{";
    // No time (no event time, no field): HEC stamps the event on arrival.
    if (ms > 0) out += "\"time\":" + epoch_seconds(ms);
    append_member(out, "host", host_);
    append_member(out, "source", source_);
    append_member(out, "sourcetype", sourcetype_);
    append_member(out, "index", index_);
    if (!id.empty()) {
      out += out.size() > 1 ? ",\"fields\":{" : "\"fields\":{";
      json_append_string(out, id_field_);
      out += ':' + id + '}';
    }
    out += out.size() > 1 ? ",\"event\":" : "\"event\":";
    out += record;
    out += '}';
    return out;
  }
  std::string dead_letter_payload(const std::string& kept) const override { return kept; }

  std::string body(const std::string&, const std::vector<std::string>& records) const override {
    std::string out;
    for (const auto& r : records) out += r;  // HEC takes concatenated event objects
    return out;
  }

  Verdict judge(const http_client::Response& r, size_t records) const override {
    Verdict v;
    if (r.ok()) return v;
    int64_t code = -1, invalid_event = -1;
    std::string_view text;
    simdjson::dom::object obj;
    if (parser().parse(r.body).get_object().get(obj) == simdjson::SUCCESS) {
      optional_member(obj["code"].get_int64(), code);
      optional_member(obj["text"].get_string(), text);
      optional_member(obj["invalid-event-number"].get_int64(), invalid_event);
    }
    const std::string what = "HEC " + std::to_string(r.status) + " code " + std::to_string(code) + ": " +
                             (text.empty() ? r.body.substr(0, 200) : std::string(text));
    if (r.status == 401 || r.status == 403) {
      v.outcome = Outcome::kFail;
      v.why = what + " (check the token: auth_token=, and that it is enabled)";
    } else if (r.status == 400) {
      if (code == 6 && invalid_event >= 0 && static_cast<size_t>(invalid_event) < records) {
        // Only that event is bad; whether HEC kept the ones before it is not
        // said, so they are sent again with the rest (repeats carry their id).
        for (size_t i = 0; i < records; ++i) {
          v.items.emplace_back(static_cast<int64_t>(i) == invalid_event ? Outcome::kRefused : Outcome::kRetry,
                               static_cast<int64_t>(i) == invalid_event ? what : "sent again after a bad event");
        }
      } else {
        v.outcome = Outcome::kRefused;
      }
    } else {
      v.outcome = classify(r);  // 429, 5xx: retried; others as every push format
    }
    return v;
  }

 private:
  const std::string id_field_, time_field_, host_, source_, sourcetype_, index_;
};

class EsBulkFormat final : public PushFormat {
 public:
  explicit EsBulkFormat(const PushSinkConfig& c) : id_field_(c.id_field), index_(c.index), create_(c.es_op == "create") {}

  std::string content_type() const override { return "application/x-ndjson"; }
  std::string auth_scheme() const override { return "ApiKey"; }

  Result<std::string> encode(std::string record, EventTime) const override {
    simdjson::dom::object obj;
    if (parser().parse(record).get_object().get(obj) != simdjson::SUCCESS) {
      return Status::invalid_argument("the record is not a JSON object");
    }
    SLUICE_ASSIGN_OR_RETURN(std::string id, field_json(obj, id_field_));
    std::string out = create_ ? "{\"create\":{" : "{\"index\":{";
    if (!index_.empty()) {
      out += "\"_index\":";
      json_append_string(out, index_);
      out += ',';
    }
    out += "\"_id\":";
    if (id.front() == '"') {
      out += id;
    } else {
      json_append_string(out, id);  // a number or other scalar becomes the id's text
    }
    out += "}}\n";
    out += record;
    return out;
  }
  std::string dead_letter_payload(const std::string& kept) const override {
    auto nl = kept.find('\n');
    return nl == std::string::npos ? kept : kept.substr(nl + 1);  // the record, without its action line
  }

  std::string body(const std::string&, const std::vector<std::string>& records) const override {
    std::string out;
    for (const auto& r : records) {
      out += r;
      out += '\n';  // the bulk body ends with a newline too
    }
    return out;
  }

  Verdict judge(const http_client::Response& r, size_t records) const override {
    Verdict v;
    if (r.status == 401 || r.status == 403) {
      v.outcome = Outcome::kFail;
      v.why = "Elasticsearch " + std::to_string(r.status) + ": " + r.body.substr(0, 200) +
              " (check auth_token= and auth_scheme=, and the key's privileges on the index)";
      return v;
    }
    if (!r.ok()) {
      v.outcome = classify(r);
      return v;
    }
    simdjson::dom::object obj;
    bool errors = false;
    if (parser().parse(r.body).get_object().get(obj) != simdjson::SUCCESS || obj["errors"].get_bool().get(errors)) {
      v.outcome = Outcome::kRetry;  // not a bulk answer (a proxy's page?): send it all again
      return v;
    }
    if (!errors) return v;
    simdjson::dom::array items;
    if (obj["items"].get_array().get(items) != simdjson::SUCCESS) {
      v.outcome = Outcome::kRetry;
      return v;
    }
    for (simdjson::dom::element item : items) {
      // {"index":{"_id":..,"status":400,"error":{"type":..,"reason":..}}}
      simdjson::dom::object outer, inner;
      int64_t status = 0;
      std::string reason;
      if (item.get_object().get(outer) == simdjson::SUCCESS) {
        for (auto [op, body] : outer) {
          if (body.get_object().get(inner) == simdjson::SUCCESS) {
            optional_member(inner["status"].get_int64(), status);
            std::string_view type, why;
            optional_member(inner["error"]["type"].get_string(), type);
            optional_member(inner["error"]["reason"].get_string(), why);
            reason = "item " + std::string(op) + " " + std::to_string(status) + " " + std::string(type) + ": " +
                     std::string(why.substr(0, 300));
          }
          break;
        }
      }
      Outcome o;
      if (status >= 200 && status < 300) o = Outcome::kAcked;
      else if (status == 409 && create_) o = Outcome::kAcked;  // created before: delivered
      else if (status == 429 || status >= 500 || status == 0) o = Outcome::kRetry;
      else o = Outcome::kRefused;
      v.items.emplace_back(o, std::move(reason));
    }
    if (v.items.size() != records) {
      v.items.clear();
      v.outcome = Outcome::kRetry;
    }
    return v;
  }

 private:
  const std::string id_field_, index_;
  const bool create_;
};

}  // namespace

std::shared_ptr<const PushFormat> make_splunk_hec_format(const PushSinkConfig& config) {
  return std::make_shared<SplunkHecFormat>(config);
}

std::shared_ptr<const PushFormat> make_es_bulk_format(const PushSinkConfig& config) {
  return std::make_shared<EsBulkFormat>(config);
}

}  // namespace sluice::http_sink
