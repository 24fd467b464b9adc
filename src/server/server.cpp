// HTTP routes, auth, limits and the model registry; the generation endpoints are in
// completions.cpp. See server.h.
#include "server/server.h"

#include <fmt/format.h>
#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "server/completions.h"
#include "server/metrics_text.h"
#include "server/openai_response.h"
#include "server/web_assets.h"

namespace moe::server {

struct Server::Impl {
    ServerOptions opt;
    httplib::Server http;
    std::mutex mu;  // models_ until ready
    std::vector<std::shared_ptr<ServedModel>> models;
    std::atomic<bool> ready{false}, stopping{false};
    std::atomic<bool> run_called{false}, run_returned{false};
    std::atomic<int64_t> n_requests{0}, n_errors{0}, n_queue_full{0};
    int listen_fd = -1;  // the socket bind() made (recorded by the socket-options hook)

    CompletionEnv env() {
        CompletionEnv e;
        e.reasoning = opt.reasoning;
        e.stopping = &stopping;
        e.queue_full = &n_queue_full;
        return e;
    }

    // The request's "model": absent -> the first; unknown -> the only one, or 404 with several.
    const ServedModel* find(const std::string& name, httplib::Response& res) {
        for (const auto& m : models)
            if (m->name == name) return m.get();
        if (name.empty() || models.size() == 1) return models.front().get();
        ApiError e;
        e.status = 404;
        e.param = "model";
        e.code = "model_not_found";
        e.message = fmt::format("The model '{}' does not exist", name);
        send_error(res, e);
        return nullptr;
    }

    void routes();
    void models_list(httplib::Response& res);
};

namespace {

ApiError status_error(int status, std::string message, std::string type, std::string code) {
    ApiError e;
    e.status = status;
    e.message = std::move(message);
    e.type = std::move(type);
    e.code = std::move(code);
    return e;
}

// The page and its files hold no data: served without an API key and while models load (the
// page asks for the key and waits on /health itself).
bool is_web_path(const std::string& path) {
    return path == "/" || path.rfind("/web/", 0) == 0;
}

void send_web_asset(httplib::Response& res, const WebAsset& a) {
    res.set_header("Content-Security-Policy", kWebContentSecurityPolicy);
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Cache-Control", "no-cache");
    res.set_content(std::string(a.body), std::string(a.content_type));
}

json model_object(const ServedModel& m) {
    const ModelShape& s = m.shape;
    json moe = {{"n_layer", s.n_layer},
                {"n_expert", s.n_expert},
                {"n_expert_used", s.n_expert_used},
                {"moe_layers", s.moe_layers},
                {"params_total", s.params_total},
                {"params_active", s.params_active},
                {"weight_bytes_per_token", s.weight_bytes_per_token}};
    return json{{"id", m.name},
                {"object", "model"},
                {"created", m.created},
                {"owned_by", "moeinfer"},
                {"moe", std::move(moe)}};
}

}  // namespace

void Server::Impl::models_list(httplib::Response& res) {
    json data = json::array();
    for (const auto& m : models) data.push_back(model_object(*m));
    send_json(res, 200, dump(json{{"object", "list"}, {"data", std::move(data)}}));
}

void Server::Impl::routes() {
    using Req = httplib::Request;
    using Res = httplib::Response;

    http.set_pre_routing_handler([this](const Req& req, Res& res) {
        if (req.path == "/health" || is_web_path(req.path))
            return httplib::Server::HandlerResponse::Unhandled;
        if (!opt.api_key.empty()) {
            const std::string want = "Bearer " + opt.api_key;
            if (req.get_header_value("Authorization") != want) {
                send_error(res, status_error(401,
                                             "Incorrect or missing API key (send 'Authorization: "
                                             "Bearer <key>')",
                                             "invalid_request_error", "invalid_api_key"));
                return httplib::Server::HandlerResponse::Handled;
            }
        }
        if (!ready.load() && req.path != "/metrics") {
            send_error(res, status_error(503, "the server is loading models", "unavailable_error",
                                         "model_loading"));
            return httplib::Server::HandlerResponse::Handled;
        }
        return httplib::Server::HandlerResponse::Unhandled;
    });
    // Statuses httplib sets itself (404 no route, 413 body limit, 400 unreadable request) get
    // OpenAI's error object; bodies our handlers wrote are left alone.
    http.set_error_handler(httplib::Server::HandlerWithResponse([this](const Req& req, Res& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        ApiError e;
        e.status = res.status;
        if (res.status == 404) {
            e.message = fmt::format("no route for {} {}", req.method, req.path);
            e.code = "not_found";
        } else if (res.status == 413) {
            e.message = fmt::format("the request body exceeds the limit of {} bytes", opt.max_body);
            e.code = "request_too_large";
        } else {
            e.message = fmt::format("HTTP {}", res.status);
        }
        send_error(res, e);
        return httplib::Server::HandlerResponse::Handled;
    }));
    http.set_logger([this](const Req&, const Res& res) {
        ++n_requests;
        if (res.status >= 400) ++n_errors;
    });

    http.Get("/", [](const Req&, Res& res) {
        if (const WebAsset* a = find_web_asset("index.html")) send_web_asset(res, *a);
    });
    http.Get(R"(/web/([A-Za-z0-9_.-]+))", [](const Req& req, Res& res) {
        if (const WebAsset* a = find_web_asset(req.matches[1].str()))
            return send_web_asset(res, *a);
        res.status = 404;  // the error handler writes the body
    });
    http.Get("/health", [this](const Req&, Res& res) {
        if (ready.load()) return send_json(res, 200, R"({"status":"ok"})");
        send_error(res, status_error(503, "the server is loading models", "unavailable_error",
                                     "model_loading"));
    });
    for (const char* p : {"/v1/models", "/models"})
        http.Get(p, [this](const Req&, Res& res) { models_list(res); });
    http.Get(R"(/v1/models/(.+))", [this](const Req& req, Res& res) {
        for (const auto& m : models)
            if (m->name == req.matches[1].str()) return send_json(res, 200, dump(model_object(*m)));
        ApiError e;
        e.status = 404;
        e.param = "model";
        e.code = "model_not_found";
        e.message = fmt::format("The model '{}' does not exist", req.matches[1].str());
        send_error(res, e);
    });
    for (const char* p : {"/v1/chat/completions", "/chat/completions"})
        http.Post(p, [this](const Req& req, Res& res) {
            auto r = parse_chat_request(req.body);
            if (!r) return send_error(res, r.error());
            if (const ServedModel* m = find(r->model, res)) handle_chat(*m, *r, env(), res);
        });
    for (const char* p : {"/v1/completions", "/completions"})
        http.Post(p, [this](const Req& req, Res& res) {
            auto r = parse_completion_request(req.body);
            if (!r) return send_error(res, r.error());
            if (const ServedModel* m = find(r->model, res)) handle_completion(*m, *r, env(), res);
        });
    http.Post("/tokenize", [this](const Req& req, Res& res) {
        auto r = parse_tokenize_request(req.body);
        if (!r) return send_error(res, r.error());
        const ServedModel* m = find(r->model, res);
        if (!m) return;
        const auto ids = m->tok->encode(r->content, r->add_special, r->parse_special);
        send_json(res, 200, dump(json{{"tokens", ids}}));
    });
    http.Post("/detokenize", [this](const Req& req, Res& res) {
        auto r = parse_detokenize_request(req.body);
        if (!r) return send_error(res, r.error());
        const ServedModel* m = find(r->model, res);
        if (!m) return;
        for (size_t i = 0; i < r->tokens.size(); ++i)
            if (r->tokens[i] >= m->tok->n_vocab())
                return send_error(res, bad_request(fmt::format("tokens[{}]", i),
                                                   fmt::format("token id {} is out of range (the "
                                                               "vocabulary has {} tokens)",
                                                               r->tokens[i], m->tok->n_vocab())));
        send_json(res, 200, dump(json{{"content", m->tok->decode(r->tokens)}}));
    });
    http.Get("/metrics", [this](const Req&, Res& res) {
        std::vector<std::pair<std::string, SchedulerMetrics>> ms;
        if (ready.load())
            for (const auto& m : models) ms.emplace_back(m->name, m->scheduler->metrics());
        ServerCounters c{n_requests.load(), n_errors.load(), n_queue_full.load()};
        res.set_content(metrics_text(ms, c), "text/plain; version=0.0.4; charset=utf-8");
    });
}

Server::Server(ServerOptions opt) : impl_(std::make_unique<Impl>()) {
    impl_->opt = std::move(opt);
    auto& h = impl_->http;
    const int n = std::max(4, impl_->opt.http_threads);
    h.new_task_queue = [n] { return new httplib::ThreadPool(size_t(n)); };
    // A stalled or slow client gives its thread back after the timeout.
    h.set_read_timeout(impl_->opt.timeout_s, 0);
    h.set_write_timeout(impl_->opt.timeout_s, 0);
    h.set_keep_alive_timeout(5);
    h.set_keep_alive_max_count(100);
    h.set_payload_max_length(impl_->opt.max_body);
    h.set_socket_options([impl = impl_.get()](socket_t sock) {
        httplib::default_socket_options(sock);
        impl->listen_fd = int(sock);  // the last one is the socket that was bound
    });
    impl_->routes();
}

Server::~Server() {
    stop();
}

// httplib listens with a backlog of 5 (compiled into Debian's libcpp-httplib). When 16-64
// clients connected at once while the accept thread waited for a CPU (a loaded 2-core host), the
// kernel dropped the handshakes beyond it and bench-serve saw "no response: Read" failures.
// listen() again on the bound socket raises it (Linux caps it at net.core.somaxconn).
constexpr int kListenBacklog = 1024;

Result<int> Server::bind() {
    auto& o = impl_->opt;
    if (o.port == 0) {
        const int port = impl_->http.bind_to_any_port(o.host);
        if (port < 0) return make_error("cannot listen on {} (any port)", o.host);
        o.port = port;
    } else if (!impl_->http.bind_to_port(o.host, o.port)) {
        return make_error("cannot listen on {}:{} (in use, or not a local address?)", o.host,
                          o.port);
    }
    if (impl_->listen_fd < 0 || ::listen(impl_->listen_fd, kListenBacklog) != 0)
        return make_error("cannot listen on {}:{} with a backlog of {}", o.host, o.port,
                          kListenBacklog);
    return o.port;
}

void Server::run() {
    impl_->run_called.store(true);
    if (!impl_->stopping.load()) impl_->http.listen_after_bind();
    impl_->run_returned.store(true);
}

void Server::stop() {
    impl_->stopping.store(true);
    // httplib's stop() does nothing before its accept loop runs: wait for it (a stop right
    // after start, e.g. a model that fails to load at once).
    for (int i = 0; i < 2000 && impl_->run_called.load() && !impl_->run_returned.load() &&
                    !impl_->http.is_running();
         ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    impl_->http.stop();
}

void Server::add_model(std::shared_ptr<ServedModel> m) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->models.push_back(std::move(m));
}

void Server::set_ready() {
    impl_->ready.store(!impl_->models.empty());
}

}  // namespace moe::server
