#include "tests/harness/test_pki.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

namespace sluice::harness {

TestPki::TestPki(std::string dir, const std::string& name) {
  if (dir.empty()) {
    std::string tmpl = "/tmp/sluice-pki-XXXXXX";
    if (!::mkdtemp(tmpl.data())) {
      error = "mkdtemp failed";
      return;
    }
    dir = own_dir_ = tmpl;
  }
  const std::string p = dir + "/" + name;
  ca = p + "-ca.pem";
  cert = p + "-node.pem";
  key = p + "-node.key";
  const std::string ca_key = p + "-ca.key", csr = p + "-node.csr", ext = p + "-ext.cnf", log = p + "-openssl.log";
  std::ofstream(ext) << "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n";
  const std::string ossl = "/usr/bin/openssl";
  const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  const std::vector<std::string> steps = {
      ossl + " req -x509" + ec + " -keyout '" + ca_key + "' -out '" + ca + "' -days 1 -subj /CN=" + name + "-test-ca",
      ossl + " req" + ec + " -keyout '" + key + "' -out '" + csr + "' -subj /CN=localhost",
      ossl + " x509 -req -in '" + csr + "' -CA '" + ca + "' -CAkey '" + ca_key + "' -CAcreateserial -out '" + cert +
          "' -days 1 -extfile '" + ext + "'"};
  for (const auto& cmd : steps) {
    if (std::system((cmd + " >>'" + log + "' 2>&1").c_str()) != 0) {
      std::ifstream in(log);
      error = "failed: " + cmd + "\n" + std::string(std::istreambuf_iterator<char>(in), {});
      return;
    }
  }
  ::chmod(key.c_str(), 0600);
  ok = true;
}

TestPki::~TestPki() {
  std::error_code ec;
  if (!own_dir_.empty()) std::filesystem::remove_all(own_dir_, ec);
}

}  // namespace sluice::harness
