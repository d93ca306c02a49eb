// Sources and sinks by URI, for jobs that take them as arguments:
//   sources: file:///path (file or directory of NDJSON), optionally ?rate=<lines/s>&max-record-bytes=<bytes>
//   sinks:   file:///path.ndjson, stdout:, stderr:, kafka://..., prometheus:METRIC?labels=..&value=..,
//            postgres://USER@HOST:PORT/DB?table=NAME[&mode=upsert&key=c1,c2&create_table=true],
//            influxdb://[USER@]HOST:PORT/DB?measurement=M[&tags=a,b&fields=x,y&time=FIELD&precision=ms]
#pragma once

#include <cstdlib>
#include <memory>
#include <string>

#include "connectors/file/ndjson.h"
#include "connectors/influxdb/influxdb_sink.h"
#include "connectors/kafka/kafka.h"
#include "connectors/postgres/postgres_sink.h"
#include "connectors/prometheus/prometheus_sink.h"
#include "engine/common/status.h"

namespace sluice::connectors {

template <class T>
Result<std::shared_ptr<const runtime::Source<T>>> source_from_uri(const std::string& uri) {
  if (uri.rfind("file://", 0) == 0) {
    std::string path = file::path_from_uri(uri);
    double rate = 0;
    size_t max_record = kDefaultMaxRecordBytes;
    if (auto q = path.find('?'); q != std::string::npos) {
      std::string query = path.substr(q + 1);
      path = path.substr(0, q);
      for (size_t at = 0; at <= query.size();) {
        size_t amp = query.find('&', at);
        std::string kv = query.substr(at, amp == std::string::npos ? std::string::npos : amp - at);
        at = amp == std::string::npos ? query.size() + 1 : amp + 1;
        char* end = nullptr;
        if (kv.rfind("rate=", 0) == 0) {
          rate = std::strtod(kv.c_str() + 5, &end);
          if (*end != '\0' || rate <= 0) {
            return Status::invalid_argument("source '" + uri + "': rate must be a positive number");
          }
        } else if (kv.rfind("max-record-bytes=", 0) == 0) {
          unsigned long long n = std::strtoull(kv.c_str() + 17, &end, 10);
          if (*end != '\0' || n < 1 || n > (size_t{1} << 30)) {
            return Status::invalid_argument("source '" + uri + "': max-record-bytes must be 1..1073741824");
          }
          max_record = static_cast<size_t>(n);
        } else {
          return Status::invalid_argument("source '" + uri +
                                          "': file source parameters are rate=<lines per second> and "
                                          "max-record-bytes=<bytes>");
        }
      }
    }
    if (path.empty()) return Status::invalid_argument("source '" + uri + "' has no path");
    return std::shared_ptr<const runtime::Source<T>>(
        std::make_shared<file::NdjsonFileSource<T>>(path, rate, max_record));
  }
  if (uri.rfind("kafka://", 0) == 0) return kafka::source_from_uri<T>(uri);
  return Status::invalid_argument("unsupported source '" + uri +
                                  "'; use file:///path/to/events.ndjson or kafka://host:port/topic");
}

template <class T>
Result<std::shared_ptr<const runtime::Sink<T>>> sink_from_uri(const std::string& uri) {
  if (uri == "stdout:" || uri == "stdout") {
    return std::shared_ptr<const runtime::Sink<T>>(file::NdjsonSink<T>::to_stdout());
  }
  if (uri == "stderr:" || uri == "stderr") {
    return std::shared_ptr<const runtime::Sink<T>>(file::NdjsonSink<T>::to_stderr());
  }
  if (uri.rfind("file://", 0) == 0) {
    std::string path = file::path_from_uri(uri);
    if (path.empty()) return Status::invalid_argument("sink '" + uri + "' has no path");
    return std::shared_ptr<const runtime::Sink<T>>(file::NdjsonSink<T>::to_file(path));
  }
  if (uri.rfind("kafka://", 0) == 0) return kafka::sink_from_uri<T>(uri);
  if (uri.rfind("prometheus:", 0) == 0) return prometheus_sink::sink_from_uri<T>(uri);
  if (uri.rfind("postgres://", 0) == 0 || uri.rfind("postgresql://", 0) == 0) {
    return postgres::sink_from_uri<T>(uri);
  }
  if (uri.rfind("influxdb://", 0) == 0) return influxdb::sink_from_uri<T>(uri);
  return Status::invalid_argument("unsupported sink '" + uri +
                                  "'; use file:///path/to/out.ndjson, kafka://host:port/topic, prometheus:METRIC?..., "
                                  "postgres://user@host:port/db?table=name, influxdb://host:port/db?measurement=name, stdout: or "
                                  "stderr:");
}

}  // namespace sluice::connectors
