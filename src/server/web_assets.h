// The web page served at GET / (src/server/web/*, embedded at build time by
// cmake/embed_web.cmake): static files looked up by path.
#pragma once

#include <string_view>

namespace moe::server {

struct WebAsset {
    std::string_view path;  // "/index.html", "/app.js", ...
    std::string_view content_type;
    std::string_view body;
};

// The embedded file named `name` ("index.html", "app.js"), or nullptr. Served as GET / (the
// page) and GET /web/NAME.
const WebAsset* find_web_asset(std::string_view name);

// Sent with every page file: nothing may be loaded from elsewhere, no inline script or style.
inline constexpr const char* kWebContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

}  // namespace moe::server
