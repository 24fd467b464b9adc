// The generation endpoints behind the routes: a validated chat or completion request becomes a
// GenRequest for the model's scheduler, and its events become an OpenAI response -- one JSON
// object, or server-sent events pulled from the GenStream by httplib's chunked provider.
#pragma once

#include <httplib.h>

#include <atomic>

#include "server/api_error.h"
#include "server/openai_request.h"
#include "server/server.h"

namespace moe::server {

struct CompletionEnv {
    ReasoningFormat reasoning = ReasoningFormat::Split;
    const std::atomic<bool>* stopping = nullptr;  // server shutting down: cancel open streams
    std::atomic<int64_t>* queue_full = nullptr;   // counts 503 refusals
};

void send_error(httplib::Response& res, const ApiError& e);
void send_json(httplib::Response& res, int status, const std::string& body);

void handle_chat(const ServedModel& m, const ChatRequest& r, const CompletionEnv& env,
                 httplib::Response& res);
void handle_completion(const ServedModel& m, const CompletionRequest& r, const CompletionEnv& env,
                       httplib::Response& res);

}  // namespace moe::server
