#include "engine/common/auth.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <thread>

namespace sluice::auth {
namespace {

TEST(CallAuthenticator, ASignatureVerifiesOnceForItsMethodUnderTheSameSecret) {
  CallAuthenticator a("secret"), b("secret");
  std::string sig = a.sign("TaskManager/CancelTasks");
  EXPECT_TRUE(b.verify("TaskManager/CancelTasks", sig).is_ok());
  EXPECT_FALSE(b.verify("TaskManager/CancelTasks", sig).is_ok()) << "a replay is refused";
  EXPECT_FALSE(b.verify("TaskManager/DeployTasks", a.sign("TaskManager/CancelTasks")).is_ok())
      << "bound to its method";
}

TEST(CallAuthenticator, WrongSecretsMissingOrMalformedCredentialsAreRefused) {
  CallAuthenticator server("secret"), wrong("guess");
  for (std::string v : {wrong.sign("M"), std::string(), std::string("v1:"), std::string("v1:1:2:3"),
                        std::string("v2:1:aaaaaaaaaaaaaaaaaaaa:00"), std::string(300, 'v'),
                        std::string("v1:99999999999999999999:aaaaaaaaaaaaaaaaaaaa:00")}) {
    EXPECT_FALSE(server.verify("M", v).is_ok()) << v;
  }
}

TEST(CallAuthenticator, SignaturesOutsideTheClockWindowAreRefused) {
  CallAuthenticator signer("secret");
  CallAuthenticator strict("secret", std::chrono::milliseconds(0));
  std::string sig = signer.sign("M");
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  Status st = strict.verify("M", sig);
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("clock"), std::string::npos) << st.message();
}

TEST(Auth, AttemptKeysDependOnSecretJobAndAttempt) {
  std::string k = derive_attempt_key("s", "job", 1);
  EXPECT_EQ(k.size(), 32u);
  EXPECT_EQ(k, derive_attempt_key("s", "job", 1));
  EXPECT_NE(k, derive_attempt_key("s", "job", 2));
  EXPECT_NE(k, derive_attempt_key("s", "job1", 1));
  EXPECT_NE(k, derive_attempt_key("t", "job", 1));
  EXPECT_EQ(hmac_sha256_hex("key", "The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");  // the well-known example
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
  EXPECT_NE(random_hex(16), random_hex(16));
}

TEST(Auth, SecretFilesMustBePrivateAndNotEmpty) {
  std::string path = ::testing::TempDir() + "/sluice-secret-" + std::to_string(::getpid());
  {
    std::ofstream(path) << "s3cret \n";
  }
  ::chmod(path.c_str(), 0644);
  EXPECT_EQ(read_secret_file(path).status().code(), StatusCode::kPermissionDenied);
  ::chmod(path.c_str(), 0600);
  auto s = read_secret_file(path);
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_EQ(*s, "s3cret");
  {
    std::ofstream(path) << "\n";
  }
  EXPECT_FALSE(read_secret_file(path).is_ok());
  std::remove(path.c_str());
  EXPECT_FALSE(read_secret_file(path).is_ok());
}

}  // namespace
}  // namespace sluice::auth
