#include "connectors/influxdb/point_layout.h"

#include <algorithm>

#include "connectors/influxdb/line_protocol.h"

namespace sluice::influxdb {

Result<PointLayout> make_layout(const InfluxSinkConfig& config, const std::vector<FieldInfo>& fields) {
  const std::string where = "influxdb sink '" + config.uri + "': ";
  std::string listing;
  for (const auto& f : fields) listing += (listing.empty() ? "" : ", ") + f.name + " (" + f.type + ")";
  if (fields.empty()) return Status::invalid_argument(where + "the record type has no fields (SLUICE_FIELDS)");
  auto index_of = [&](const std::string& name) -> Result<int> {
    for (size_t i = 0; i < fields.size(); ++i)
      if (fields[i].name == name) return static_cast<int>(i);
    return Status::invalid_argument(where + "'" + name + "' is not a field of the record (fields: " + listing + ")");
  };
  if (std::string p = name_problem(config.measurement, Element::kMeasurement); !p.empty()) {
    return Status::invalid_argument(where + "measurement '" + config.measurement + "' " + p);
  }

  PointLayout l;
  l.precision = config.precision;
  l.roles.assign(fields.size(), Role::kSkip);
  l.tag_slot.assign(fields.size(), -1);
  l.prefix.assign(fields.size(), "");
  append_escaped(l.measurement, config.measurement, Element::kMeasurement);
  auto claim = [&](int i, Role r, const char* as) -> Status {
    if (l.roles[i] != Role::kSkip) {
      return Status::invalid_argument(where + "field '" + fields[i].name + "' is named twice (as " + as +
                                      " and before); a record field is one tag, one field or the time");
    }
    l.roles[i] = r;
    return Status::ok();
  };

  if (!config.time_field.empty()) {
    SLUICE_ASSIGN_OR_RETURN(int i, index_of(config.time_field));
    if (!fields[i].can_time) {
      return Status::invalid_argument(where + "time field '" + fields[i].name + "' is " + fields[i].type +
                                      "; it must be an integer count of " +
                                      std::string(precision_name(config.precision)) + " since the epoch");
    }
    SLUICE_RETURN_IF_ERROR(claim(i, Role::kTime, "the time"));
    l.has_time_field = true;
  }
  for (const auto& name : config.tags) {
    SLUICE_ASSIGN_OR_RETURN(int i, index_of(name));
    if (!fields[i].can_tag) {
      return Status::invalid_argument(where + "tag '" + name + "' is " + fields[i].type +
                                      "; tags are text, numbers or bool");
    }
    if (std::string p = name_problem(name, Element::kTagKey); !p.empty()) {
      return Status::invalid_argument(where + "tag key '" + name + "' " + p);
    }
    SLUICE_RETURN_IF_ERROR(claim(i, Role::kTag, "a tag"));
    l.tag_field.push_back(i);
  }
  // Tags sorted by key (Go's bytes.Compare order): InfluxDB sorts them
  // otherwise, for every point.
  std::sort(l.tag_field.begin(), l.tag_field.end(),
            [&](int a, int b) { return fields[a].name < fields[b].name; });
  for (size_t s = 0; s < l.tag_field.size(); ++s) {
    int i = l.tag_field[s];
    l.tag_slot[i] = static_cast<int>(s);
    l.prefix[i] = ",";
    append_escaped(l.prefix[i], fields[i].name, Element::kTagKey);
    l.prefix[i] += '=';
  }

  std::vector<int> chosen;
  if (!config.fields.empty()) {
    for (const auto& name : config.fields) {
      SLUICE_ASSIGN_OR_RETURN(int i, index_of(name));
      chosen.push_back(i);
    }
  } else {
    for (size_t i = 0; i < fields.size(); ++i)
      if (l.roles[i] == Role::kSkip) chosen.push_back(static_cast<int>(i));
  }
  for (int i : chosen) {
    if (!fields[i].can_field) {
      if (config.fields.empty()) {
        return Status::invalid_argument(where + "record field '" + fields[i].name + "' is " + fields[i].type +
                                        ", which no InfluxDB field type holds; list the fields to write with "
                                        "fields=");
      }
      return Status::invalid_argument(where + "field '" + fields[i].name + "' is " + fields[i].type +
                                      "; fields are integers, floats, strings or bool");
    }
    if (std::string p = name_problem(fields[i].name, Element::kFieldKey); !p.empty()) {
      return Status::invalid_argument(where + "field key '" + fields[i].name + "' " + p +
                                      (fields[i].name == "time" ? "; use it as time=time, or leave it out" : ""));
    }
    SLUICE_RETURN_IF_ERROR(claim(i, Role::kField, "a field"));
    append_escaped(l.prefix[i], fields[i].name, Element::kFieldKey);
    l.prefix[i] += '=';
  }
  if (chosen.empty()) {
    return Status::invalid_argument(where + "a point needs at least one field, and every record field is a tag "
                                    "or the time (fields: " + listing + ")");
  }
  return l;
}

}  // namespace sluice::influxdb
