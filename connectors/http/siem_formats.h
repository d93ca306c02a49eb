// The push sink's formats for SIEMs (README.md, "SIEM formats"):
//
// - splunk-hec: Splunk HTTP Event Collector, POST .../services/collector/event,
//   `Authorization: Splunk <token>`, a body of concatenated event objects
//   {"time":<epoch s.ms>,"host":..,"source":..,"sourcetype":..,"index":..,
//    "fields":{<id_field>:..},"event":{record}}.
// - es-bulk: Elasticsearch POST .../_bulk (application/x-ndjson), per record
//   an action line {"index"|"create":{"_index":..,"_id":<id_field>}} and the
//   record; the answer is judged per item.
#pragma once

#include <memory>

#include "connectors/http/push_config.h"
#include "connectors/http/push_core.h"

namespace sluice::http_sink {

/// Answers: 2xx acknowledged; 401/403 (token disabled, invalid, missing)
/// fail the task at once with HEC's text; 400 refuses the batch (bad data:
/// dead letters) except code 6 with "invalid-event-number": only that
/// event is refused and the others are sent again; 429, 5xx (503: server
/// busy, queues full) retried with backoff. Immutable.
std::shared_ptr<const PushFormat> make_splunk_hec_format(const PushSinkConfig& config);

/// Answers: 200 with "errors":false acknowledged; with "errors":true each
/// item by its status: 2xx acknowledged, 409 on op=create acknowledged (the
/// document is there already), 429 and 5xx sent again (only those records),
/// other 4xx (mapping errors, ...) dead letters with the item's error type
/// and reason. A whole answer of 401/403 fails the task; 429/5xx retried.
/// Immutable.
std::shared_ptr<const PushFormat> make_es_bulk_format(const PushSinkConfig& config);

}  // namespace sluice::http_sink
