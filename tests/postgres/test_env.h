// The server shared by every test of the binary (started once, ~1 s) and
// helpers to build writers against it.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "connectors/postgres/postgres_sink.h"
#include "tests/postgres/pg_server.h"

namespace sluice::postgres::testing {

/// The binary's server; started by the first call.
PgServer& server();

/// postgres://postgres@127.0.0.1:<port>/sluice?<params>
std::string uri(const std::string& params);

/// Creates a login role with `password` that may create tables in public
/// and use the shared progress table (which the superuser may own).
void create_role(const std::string& role, const std::string& password);

/// A row of every supported column type.
struct AllTypes {
  int64_t id = 0;
  int32_t small = 0;
  double ratio = 0;
  bool flag = false;
  std::string text;
  SLUICE_FIELDS(id, small, ratio, flag, text)
};

/// The record of the protocol tests.
struct Row {
  int64_t id = 0;
  std::string note;
  SLUICE_FIELDS(id, note)
};

}  // namespace sluice::postgres::testing
