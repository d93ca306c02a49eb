#include "connectors/http/dev_receiver.h"

#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <cstdio>

namespace sluice::http_sink {

Result<std::unique_ptr<DevPushReceiver>> DevPushReceiver::start(DevReceiverOptions options) {
  std::unique_ptr<DevPushReceiver> r(new DevPushReceiver());
  r->options_ = std::move(options);
  HttpServerOptions o;
  o.bind = r->options_.bind;
  o.name = "dev-receiver";
  o.bearer_token = r->options_.token;
  o.max_body_bytes = 64 << 20;
  SLUICE_ASSIGN_OR_RETURN(r->server_, HttpServer::create(o));
  DevPushReceiver* self = r.get();
  r->server_->get("/health", [](const HttpRequest&) { return HttpResponse{200, "{\"ok\":true}"}; }, true);
  r->server_->get("/records", [self](const HttpRequest&) { return HttpResponse{200, self->records_json()}; });
  r->server_->get("/stats", [self](const HttpRequest&) {
    DevReceiverStats s = self->stats();
    char buf[200];
    std::snprintf(buf, sizeof buf, "{\"batches\":%llu,\"duplicates\":%llu,\"records\":%llu,\"refused\":%llu}",
                  static_cast<unsigned long long>(s.batches), static_cast<unsigned long long>(s.duplicates),
                  static_cast<unsigned long long>(s.records), static_cast<unsigned long long>(s.refused));
    return HttpResponse{200, buf};
  });
  r->server_->post(".*", [self](const HttpRequest& req) { return self->post(req); });
  r->server_->start();
  return r;
}

DevReceiverStats DevPushReceiver::stats() const {
  std::lock_guard lk(mu_);
  return stats_;
}

std::string DevPushReceiver::records_json() const {
  std::lock_guard lk(mu_);
  std::string out = "[";
  bool first = true;
  for (const auto& [k, v] : records_) {
    if (!first) out += ',';
    first = false;
    out += v;
  }
  return out + "]";
}

HttpResponse DevPushReceiver::post(const HttpRequest& req) {
  simdjson::dom::parser parser;
  std::string key = req.header("Idempotency-Key");
  std::vector<simdjson::dom::element> recs;
  simdjson::dom::element root;
  const bool batch = parser.parse(req.body).get(root) == simdjson::SUCCESS && root.is_object() &&
                     root["records"].is_array();
  if (batch) {
    std::string_view k;
    if (key.empty() && root["idempotency_key"].get(k) == simdjson::SUCCESS) key = std::string(k);
    for (auto r : root["records"].get_array()) recs.push_back(r);
  }
  std::lock_guard lk(mu_);
  if (key.empty()) {
    ++stats_.refused;
    return HttpResponse{400, "{\"error\":\"a batch needs an Idempotency-Key header or idempotency_key\"}"};
  }
  if (seen_.count(key)) {
    ++stats_.duplicates;
    return HttpResponse{200, "{\"duplicate\":true}"};
  }
  auto keep = [&](simdjson::dom::element r) {
    std::string id;
    if (options_.key_fields.empty()) {
      char buf[24];
      std::snprintf(buf, sizeof buf, "%020llu", static_cast<unsigned long long>(next_++));
      id = buf;
    } else {
      for (const auto& f : options_.key_fields) {
        simdjson::dom::element v;
        id += (r[f].get(v) == simdjson::SUCCESS ? simdjson::to_string(v) : std::string("null")) + "\x1f";
      }
    }
    if (records_.size() >= options_.max_keys && !records_.count(id)) records_.erase(records_.begin());
    records_[id] = simdjson::to_string(r);
    ++stats_.records;
  };
  if (batch) {
    for (auto r : recs) keep(r);
  } else {
    // NDJSON: one record per line.
    size_t start = 0;
    while (start < req.body.size()) {
      size_t nl = req.body.find('\n', start);
      std::string line = req.body.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
      start = nl == std::string::npos ? req.body.size() : nl + 1;
      if (line.empty()) continue;
      simdjson::dom::element r;
      if (parser.parse(line).get(r) != simdjson::SUCCESS) {
        ++stats_.refused;
        return HttpResponse{400, "{\"error\":\"a line is not JSON\"}"};
      }
      keep(r);
    }
  }
  seen_.insert(key);
  seen_order_.push_back(key);
  if (seen_order_.size() > options_.max_batch_keys) {
    seen_.erase(seen_order_.front());
    seen_order_.pop_front();
  }
  ++stats_.batches;
  return HttpResponse{200, "{\"ok\":true}"};
}

}  // namespace sluice::http_sink
