// The embedded web page's file table (see web_assets.h).
#include "server/web_assets.h"

namespace moe::server {
namespace {

const WebAsset kAssets[] = {
#include "web_assets.inc"
};

}  // namespace

const WebAsset* find_web_asset(std::string_view name) {
    for (const WebAsset& a : kAssets)
        if (a.path.substr(1) == name) return &a;
    return nullptr;
}

}  // namespace moe::server
