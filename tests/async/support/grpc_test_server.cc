#include "tests/async/support/grpc_test_server.h"

#include <chrono>
#include <thread>

#include "tests/async/support/scoring.grpc.pb.h"
#include "tests/async/support/scoring.h"

namespace sluice::async_test {

class GrpcTestServer::Service final : public sluice::test::Scorer::CallbackService {
 public:
  explicit Service(GrpcTestServer* owner) : owner_(owner) {}
  grpc::ServerUnaryReactor* Score(grpc::CallbackServerContext* ctx, const sluice::test::ScoreRequest* req,
                                  sluice::test::ScoreReply* reply) override {
    owner_->calls_.fetch_add(1);
    auto* reactor = ctx->DefaultReactor();
    int64_t delay;
    bool fail;
    {
      std::lock_guard lk(owner_->rng_mu_);
      const auto& o = owner_->opts_;
      delay = o.max_latency_us > o.min_latency_us
                  ? std::uniform_int_distribution<int64_t>(o.min_latency_us, o.max_latency_us)(owner_->rng_)
                  : o.min_latency_us;
      fail = std::uniform_real_distribution<double>(0, 1)(owner_->rng_) < owner_->failure_rate_.load();
    }
    reply->set_id(req->id());
    reply->set_score(expected_score(req->id()));
    GrpcTestServer* owner = owner_;
    owner_->delays_->after(delay, [reactor, fail, owner] {
      if (fail) {
        owner->failed_.fetch_add(1);
        reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "overloaded"));
      } else {
        owner->answered_.fetch_add(1);
        reactor->Finish(grpc::Status::OK);
      }
    });
    return reactor;
  }

 private:
  GrpcTestServer* owner_;
};

GrpcTestServer::GrpcTestServer(GrpcServerOptions options) : opts_(options), rng_(options.seed) {
  failure_rate_ = options.failure_rate;
}

GrpcTestServer::~GrpcTestServer() { down(); }

Result<std::unique_ptr<GrpcTestServer>> GrpcTestServer::start(GrpcServerOptions options) {
  std::unique_ptr<GrpcTestServer> s(new GrpcTestServer(options));
  s->port_ = options.port;
  SLUICE_RETURN_IF_ERROR(s->serve());
  return s;
}

Status GrpcTestServer::serve() {
  delays_ = std::make_unique<DelayQueue>("grpc-test-srv");
  service_ = std::make_unique<Service>(this);
  grpc::ServerBuilder b;
  int bound = 0;
  b.AddListeningPort("127.0.0.1:" + std::to_string(port_), grpc::InsecureServerCredentials(), &bound);
  b.RegisterService(service_.get());
  server_ = b.BuildAndStart();
  if (!server_ || bound == 0) {
    server_.reset();
    return Status::unavailable("cannot serve gRPC on 127.0.0.1:" + std::to_string(port_));
  }
  port_ = bound;
  return Status::ok();
}

void GrpcTestServer::down() {
  if (!server_) return;
  // Every call waiting for its latency is answered (flush), then the server
  // refuses new calls and closes its port.
  delays_->flush();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  delays_->flush();
  server_->Wait();
  server_.reset();
  delays_.reset();
  service_.reset();
}

Status GrpcTestServer::up() {
  if (server_) return Status::ok();
  Status st;
  for (int i = 0; i < 50; ++i) {
    st = serve();
    if (st.is_ok()) return st;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return st;
}

}  // namespace sluice::async_test
