// Certificates for tests of mutual TLS: a CA and one certificate for every
// process (IP 127.0.0.1 and localhost, server and client use), made with
// Debian's openssl CLI in a directory the test owns.
#pragma once

#include <string>

namespace sluice::harness {

/// A CA and a node certificate signed by it, written under `dir` with file
/// names prefixed by `name` (two TestPki with different names are two
/// unrelated clusters). `dir` empty: a directory of its own under /tmp,
/// removed with the object; otherwise the files stay until the test removes
/// `dir`. `ok` is false (and `error` says why) if the openssl CLI failed.
/// Made once in the constructor. Any thread.
struct TestPki {
  explicit TestPki(std::string dir = "", const std::string& name = "cluster");
  ~TestPki();
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;
  std::string ca, cert, key;  // PEM files
  bool ok = false;
  std::string error;

 private:
  std::string own_dir_;  // removed by the destructor
};

}  // namespace sluice::harness
