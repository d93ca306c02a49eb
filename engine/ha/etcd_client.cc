#include "engine/ha/etcd_client.h"

#include <curl/curl.h>
#include <simdjson.h>

#include <mutex>

#include "engine/common/json.h"

namespace sluice::ha {

namespace {

std::once_flag g_curl_init;

/// Responses of etcd are small; anything larger is not etcd.
constexpr size_t kMaxResponseBytes = size_t{4} << 20;

size_t on_write(char* data, size_t size, size_t n, void* user) {
  auto* out = static_cast<std::string*>(user);
  if (out->size() + size * n > kMaxResponseBytes) return 0;
  out->append(data, size * n);
  return size * n;
}

/// etcd's gateway writes int64 as a JSON string; accepts a number too. Absent = 0.
int64_t int64_of(simdjson::dom::element e) {
  std::string_view s;
  if (e.get(s) == simdjson::SUCCESS) {
    int64_t v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return 0;
      v = v * 10 + (c - '0');
    }
    return v;
  }
  int64_t v = 0;
  if (e.get(v) == simdjson::SUCCESS) return v;
  uint64_t u = 0;
  if (e.get(u) == simdjson::SUCCESS) return static_cast<int64_t>(u);
  return 0;
}

int64_t field(simdjson::dom::element obj, const char* name) {
  simdjson::dom::element e;
  if (obj[name].get(e) != simdjson::SUCCESS) return 0;
  return int64_of(e);
}

std::string b64(const std::string& s) { return base64_encode(s); }

Result<EtcdKeyValue> parse_kv(simdjson::dom::element kv) {
  EtcdKeyValue out;
  std::string_view k, v;
  if (kv["key"].get(k) != simdjson::SUCCESS) return Status::corruption("etcd: a key without a name");
  auto key = base64_decode(k);
  if (!key) return Status::corruption("etcd: key is not base64");
  out.key = *key;
  if (kv["value"].get(v) == simdjson::SUCCESS) {
    auto value = base64_decode(v);
    if (!value) return Status::corruption("etcd: value is not base64");
    out.value = *value;
  }
  out.create_revision = field(kv, "create_revision");
  out.mod_revision = field(kv, "mod_revision");
  out.lease = field(kv, "lease");
  return out;
}

/// The first key of a range response (`kvs`), if any.
Result<std::optional<EtcdKeyValue>> first_kv(simdjson::dom::element range) {
  simdjson::dom::array kvs;
  if (range["kvs"].get(kvs) != simdjson::SUCCESS || kvs.size() == 0) return std::optional<EtcdKeyValue>();
  SLUICE_ASSIGN_OR_RETURN(auto kv, parse_kv(kvs.at(0)));
  return std::optional<EtcdKeyValue>(std::move(kv));
}

std::string compare_created(const std::string& key, int64_t revision) {
  return "{\"key\":\"" + b64(key) + "\",\"target\":\"CREATE\",\"result\":\"EQUAL\",\"create_revision\":\"" +
         std::to_string(revision) + "\"}";
}

}  // namespace

EtcdClient::EtcdClient(std::vector<std::string> endpoints, Duration timeout)
    : endpoints_(std::move(endpoints)), timeout_(timeout) {
  std::call_once(g_curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

Result<std::string> EtcdClient::post(const std::string& path, const std::string& body) {
  size_t start;
  {
    std::lock_guard lk(mu_);
    start = preferred_;
  }
  Status last = Status::unavailable("etcd: no endpoints");
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    size_t at = (start + i) % endpoints_.size();
    std::string url = endpoints_[at] + path;
    std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
    if (!curl) return Status::internal("etcd: curl_easy_init failed");
    std::string response;
    char error[CURL_ERROR_SIZE] = {0};
    struct curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl.get(), CURLOPT_POST, 1L);
    curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, &on_write);
    curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &response);
    curl_easy_setopt(curl.get(), CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_.count()));
    curl_easy_setopt(curl.get(), CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_.count()));
    curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl.get(), CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode rc = curl_easy_perform(curl.get());
    long code = 0;
    curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK) {
      last = Status::unavailable("etcd at " + endpoints_[at] + ": " + (error[0] ? error : curl_easy_strerror(rc)));
      continue;
    }
    if (code != 200) {
      last = Status::unavailable("etcd at " + endpoints_[at] + " answered " + std::to_string(code) + " to " + path +
                                 ": " + response.substr(0, 300));
      continue;
    }
    std::lock_guard lk(mu_);
    preferred_ = at;
    return response;
  }
  return last;
}

Result<int64_t> EtcdClient::grant_lease(int64_t ttl_seconds) {
  SLUICE_ASSIGN_OR_RETURN(std::string r, post("/v3/lease/grant", "{\"TTL\":" + std::to_string(ttl_seconds) + "}"));
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  if (p.parse(r).get(doc) != simdjson::SUCCESS) return Status::corruption("etcd: lease grant answer is not JSON");
  int64_t id = field(doc, "ID");
  if (id == 0) return Status::unavailable("etcd granted no lease: " + r.substr(0, 300));
  return id;
}

Result<int64_t> EtcdClient::keep_alive(int64_t lease) {
  SLUICE_ASSIGN_OR_RETURN(std::string r, post("/v3/lease/keepalive", "{\"ID\":\"" + std::to_string(lease) + "\"}"));
  simdjson::dom::parser p;
  simdjson::dom::element doc, result;
  if (p.parse(r).get(doc) != simdjson::SUCCESS) return Status::corruption("etcd: keepalive answer is not JSON");
  if (doc["result"].get(result) != simdjson::SUCCESS) return Status::unavailable("etcd: keepalive failed: " + r.substr(0, 300));
  return field(result, "TTL");
}

Status EtcdClient::revoke_lease(int64_t lease) {
  return post("/v3/lease/revoke", "{\"ID\":\"" + std::to_string(lease) + "\"}").status();
}

Result<std::optional<EtcdKeyValue>> EtcdClient::get(const std::string& key) {
  SLUICE_ASSIGN_OR_RETURN(std::string r, post("/v3/kv/range", "{\"key\":\"" + b64(key) + "\"}"));
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  if (p.parse(r).get(doc) != simdjson::SUCCESS) return Status::corruption("etcd: range answer is not JSON");
  return first_kv(doc);
}

Result<std::pair<bool, EtcdKeyValue>> EtcdClient::create(const std::string& key, const std::string& value,
                                                        int64_t lease) {
  std::string put = "{\"request_put\":{\"key\":\"" + b64(key) + "\",\"value\":\"" + b64(value) + "\"" +
                    (lease ? ",\"lease\":\"" + std::to_string(lease) + "\"" : std::string()) + "}}";
  std::string range = "{\"request_range\":{\"key\":\"" + b64(key) + "\"}}";
  std::string body = "{\"compare\":[" + compare_created(key, 0) + "],\"success\":[" + put + "," + range +
                     "],\"failure\":[" + range + "]}";
  SLUICE_ASSIGN_OR_RETURN(std::string r, post("/v3/kv/txn", body));
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  if (p.parse(r).get(doc) != simdjson::SUCCESS) return Status::corruption("etcd: txn answer is not JSON");
  bool succeeded = false;
  if (doc["succeeded"].get(succeeded) != simdjson::SUCCESS) succeeded = false;
  simdjson::dom::array responses;
  if (doc["responses"].get(responses) != simdjson::SUCCESS) return Status::corruption("etcd: txn without responses");
  simdjson::dom::element last_range;
  for (auto resp : responses) {
    simdjson::dom::element rr;
    if (resp["response_range"].get(rr) == simdjson::SUCCESS) last_range = rr;
  }
  if (last_range.type() != simdjson::dom::element_type::OBJECT) return Status::corruption("etcd: txn without a range");
  SLUICE_ASSIGN_OR_RETURN(auto kv, first_kv(last_range));
  if (!kv) return Status::unavailable("etcd: " + key + " vanished right after the transaction");
  return std::make_pair(succeeded, std::move(*kv));
}

Result<bool> EtcdClient::put_if(const std::string& guard_key, int64_t guard_revision, const std::string& key,
                                const std::string& value) {
  return guarded("{\"request_put\":{\"key\":\"" + b64(key) + "\",\"value\":\"" + b64(value) + "\"}}", guard_key,
                 guard_revision);
}

Result<bool> EtcdClient::delete_if(const std::string& guard_key, int64_t guard_revision, const std::string& key) {
  return guarded("{\"request_delete_range\":{\"key\":\"" + b64(key) + "\"}}", guard_key, guard_revision);
}

Result<bool> EtcdClient::guarded(const std::string& operation, const std::string& guard_key, int64_t guard_revision) {
  std::string body = "{\"compare\":[" + compare_created(guard_key, guard_revision) + "],\"success\":[" + operation + "]}";
  SLUICE_ASSIGN_OR_RETURN(std::string r, post("/v3/kv/txn", body));
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  if (p.parse(r).get(doc) != simdjson::SUCCESS) return Status::corruption("etcd: txn answer is not JSON");
  bool succeeded = false;
  if (doc["succeeded"].get(succeeded) != simdjson::SUCCESS) succeeded = false;
  return succeeded;
}

}  // namespace sluice::ha
