#pragma once

#include <string_view>

namespace sluice::proxy {

// The live status page served at the admin listener's GET /: static HTML
// whose script polls /status once a second and redraws in place.
std::string_view admin_page_html();

}  // namespace sluice::proxy
