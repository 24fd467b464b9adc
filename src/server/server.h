// The OpenAI-compatible HTTP server over cpp-httplib: routes, API-key auth, body limit, the
// registry of served models (each with its own Scheduler) and SSE streaming. Listening starts
// before the models are loaded: /health answers 503 until set_ready().
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "core/result.h"
#include "runtime/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace moe::server {

// A model's size and routing shape, for GET /v1/models ("moe") and the web page's grid and
// info line. A dense model has n_expert 0 and no moe_layers.
struct ModelShape {
    int n_layer = 0, n_expert = 0, n_expert_used = 0;
    std::vector<int> moe_layers;                  // model layer index of each MoE layer, in order
    int64_t params_total = 0, params_active = 0;  // active: per token (inspect's headline)
    int64_t weight_bytes_per_token = 0;  // one token alone: non-routed + k experts per layer
};

// One model the server answers for. The pointers stay valid while `owner` lives.
struct ServedModel {
    std::string name;  // the request's "model" field, /v1/models id
    const Tokenizer* tok = nullptr;
    Scheduler* scheduler = nullptr;
    ChatRenderer renderer;
    int n_ctx = 0;  // positions per sequence (prompt + completion)
    int64_t created = 0;
    ModelShape shape;
    std::shared_ptr<void> owner;
};

enum class ReasoningFormat { Split, None };  // --reasoning-format deepseek | none

struct ServerOptions {
    std::string host = "127.0.0.1";
    int port = 8080;      // 0: any free port
    std::string api_key;  // "": no auth
    size_t max_body = size_t(8) << 20;
    int timeout_s = 30;     // socket read/write timeout (stalled clients give their thread back)
    int http_threads = 64;  // connections served at once
    ReasoningFormat reasoning = ReasoningFormat::Split;
};

class Server {
  public:
    explicit Server(ServerOptions opt);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds the socket; returns the port (the chosen one for port 0).
    Result<int> bind();
    // Serves until stop(); call after bind().
    void run();
    // Thread-safe; run() returns once open streams have been cancelled.
    void stop();

    // Models are added before set_ready(); requests are refused with 503 until then.
    void add_model(std::shared_ptr<ServedModel> m);
    void set_ready();

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace moe::server
