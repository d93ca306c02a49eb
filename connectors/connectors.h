// Sources and sinks by URI, for jobs that take them as arguments:
//   sources: file:///path (file or directory of NDJSON), optionally ?rate=<lines/s>&max-record-bytes=<bytes>&max-field-bytes=<bytes>;
//            file:///lake/?partition=dt:ts:date,...&from=T&to=T (a partitioned sink's files in a time range)
//   sinks:   file:///path.ndjson, file:///dir/?partition=dt:ts:date,...&format=ndjson|csv&compression=zstd
//            (partitioned, data-lake layout), stdout:, stderr:, kafka://..., prometheus:METRIC?labels=..&value=..,
//            postgres://USER@HOST:PORT/DB?table=NAME[&mode=upsert&key=c1,c2&create_table=true],
//            influxdb://[USER@]HOST:PORT/DB?measurement=M[&tags=a,b&fields=x,y&time=FIELD&precision=ms],
//            http(s)://host:port/path?batch_size=..&auth_token=env:NAME (push batches of JSON records)
#pragma once

#include <cstdlib>
#include <memory>
#include <string>

#include "connectors/file/ndjson.h"
#include "connectors/file/partitioned.h"
#include "connectors/http/http_sink.h"
#include "connectors/influxdb/influxdb_sink.h"
#include "connectors/kafka/kafka.h"
#include "connectors/postgres/postgres_sink.h"
#include "connectors/prometheus/prometheus_sink.h"
#include "engine/common/status.h"

namespace sluice::connectors {

template <class T>
Result<std::shared_ptr<const runtime::Source<T>>> source_from_uri(const std::string& uri) {
  if (uri.rfind("file://", 0) == 0) {
    SLUICE_ASSIGN_OR_RETURN(auto s, file::NdjsonFileSource<T>::from_uri(uri));
    return std::shared_ptr<const runtime::Source<T>>(std::move(s));
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
  if (file::PartitionedSinkConfig::matches(uri)) {
    SLUICE_ASSIGN_OR_RETURN(auto s, file::PartitionedFileSink<T>::from_uri(uri));
    return std::shared_ptr<const runtime::Sink<T>>(std::move(s));
  }
  if (uri.rfind("file://", 0) == 0) {
    std::string path = file::path_from_uri(uri);
    if (path.empty()) return Status::invalid_argument("sink '" + uri + "' has no path");
    return std::shared_ptr<const runtime::Sink<T>>(file::NdjsonSink<T>::to_file(path));
  }
  if (uri.rfind("kafka://", 0) == 0) return kafka::sink_from_uri<T>(uri);
  if (uri.rfind("prometheus:", 0) == 0) return prometheus_sink::sink_from_uri<T>(uri);
  if (http_sink::PushSinkConfig::matches(uri)) return http_sink::sink_from_uri<T>(uri);
  if (uri.rfind("postgres://", 0) == 0 || uri.rfind("postgresql://", 0) == 0) {
    return postgres::sink_from_uri<T>(uri);
  }
  if (uri.rfind("influxdb://", 0) == 0) return influxdb::sink_from_uri<T>(uri);
  return Status::invalid_argument("unsupported sink '" + uri +
                                  "'; use file:///path/to/out.ndjson, kafka://host:port/topic, prometheus:METRIC?..., "
                                  "postgres://user@host:port/db?table=name, influxdb://host:port/db?measurement=name, "
                                  "http://host:port/path, stdout: or stderr:");
}

}  // namespace sluice::connectors
